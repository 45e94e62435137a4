use oidc_auth as oidc;

#[oidc::required(scopes = "admin", scopes = "read")]
async fn handler() {}

fn main() {}
