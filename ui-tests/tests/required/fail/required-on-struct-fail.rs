use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
struct Handler;

fn main() {}
