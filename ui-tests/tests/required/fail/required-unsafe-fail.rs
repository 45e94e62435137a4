use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async unsafe fn handler() {}

fn main() {}
