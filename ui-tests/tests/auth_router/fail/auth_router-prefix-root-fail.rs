use oidc_auth as oidc;

#[oidc::auth_router(prefix = "/")]
struct AuthApi;

fn main() {}
