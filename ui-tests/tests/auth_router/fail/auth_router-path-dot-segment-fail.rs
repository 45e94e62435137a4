use oidc_auth as oidc;

#[oidc::auth_router(login = "/auth/../login")]
struct AuthApi;

fn main() {}
