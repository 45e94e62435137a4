use oidc_auth as oidc;

#[oidc::auth_router(login = "/")]
struct AuthApi;

fn main() {}
