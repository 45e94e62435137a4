use oidc_auth as oidc;

#[oidc::auth_router(crate = "not a path")]
struct AuthApi;

fn main() {}
