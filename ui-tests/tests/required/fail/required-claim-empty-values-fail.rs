use oidc_auth as oidc;

#[oidc::required(claims(groups = []))]
async fn handler() {}

fn main() {}
