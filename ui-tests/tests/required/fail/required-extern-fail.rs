use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async extern "C" fn handler() {}

fn main() {}
