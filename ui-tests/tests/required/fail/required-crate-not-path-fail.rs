use oidc_auth as oidc;

#[oidc::required(crate = "not a path!")]
async fn handler() {}

fn main() {}
