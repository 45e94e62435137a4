use oidc_auth as oidc;

#[oidc::required(scopes = "admin read admin")]
async fn handler() {}

fn main() {}
