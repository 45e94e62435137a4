use oidc_auth as oidc;

#[oidc::required(crate = oidc_auth)]
async fn handler() {}

fn main() {}
