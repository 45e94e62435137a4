use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
fn handler() {}

fn main() {}
