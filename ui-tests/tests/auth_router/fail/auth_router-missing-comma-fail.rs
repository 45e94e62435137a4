use oidc_auth as oidc;

#[oidc::auth_router(prefix = "/api" login = "/signin")]
struct AuthApi;

fn main() {}
