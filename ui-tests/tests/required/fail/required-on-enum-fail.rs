use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
enum Handler {}

fn main() {}
