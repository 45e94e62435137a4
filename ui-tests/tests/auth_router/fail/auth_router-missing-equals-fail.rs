use oidc_auth as oidc;

#[oidc::auth_router(prefix "/api")]
struct AuthApi;

fn main() {}
