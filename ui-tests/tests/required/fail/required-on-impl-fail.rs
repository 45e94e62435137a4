use oidc_auth as oidc;

struct Api;

#[oidc::required(scopes = "admin")]
impl Api {}

fn main() {}
