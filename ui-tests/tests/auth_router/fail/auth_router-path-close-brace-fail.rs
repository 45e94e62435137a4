use oidc_auth as oidc;

#[oidc::auth_router(userinfo = "/auth/me}")]
struct AuthApi;

fn main() {}
