use oidc_auth as oidc;

#[oidc::auth_router(prefx = "/api")]
struct AuthApi;

fn main() {}
