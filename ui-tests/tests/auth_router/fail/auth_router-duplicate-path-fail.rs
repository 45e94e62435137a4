use oidc_auth as oidc;

#[oidc::auth_router(login = "/auth/v2/token")]
struct AuthApi;

fn main() {}
