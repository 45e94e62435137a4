use oidc_auth as oidc;

#[oidc::auth_router(token = "/auth/token/")]
struct AuthApi;

fn main() {}
