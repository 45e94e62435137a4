use oidc_auth as oidc;

#[oidc::auth_router(login = "/auth/*rest")]
struct AuthApi;

fn main() {}
