use oidc_auth as oidc;

#[oidc::required(scopes = "admin, read")]
async fn handler() {}

fn main() {}
