use oidc_auth as oidc;

#[oidc::auth_router(crate = oidc_auth)]
struct AuthApi;

fn main() {}
