use oidc_auth as oidc;

#[oidc::required(scopes = ",")]
async fn handler() {}

fn main() {}
