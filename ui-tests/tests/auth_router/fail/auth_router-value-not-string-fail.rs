use oidc_auth as oidc;

#[oidc::auth_router(login = 5)]
struct AuthApi;

fn main() {}
