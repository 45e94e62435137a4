use oidc_auth as oidc;

#[oidc::auth_router(jwks_path = "/jwks")]
struct AuthApi;

fn main() {}
