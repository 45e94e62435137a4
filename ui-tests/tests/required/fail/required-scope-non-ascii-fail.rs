use oidc_auth as oidc;

#[oidc::required(scopes = "café")]
async fn handler() {}

fn main() {}
