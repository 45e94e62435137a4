use oidc_auth as oidc;

#[oidc::auth_router(login = "/auth/v2/logout")]
struct AuthApi;

fn main() {}
