use oidc_auth as oidc;

#[oidc::required(scopes = 5)]
async fn handler() {}

fn main() {}
