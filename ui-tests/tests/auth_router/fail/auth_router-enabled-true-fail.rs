use oidc_auth as oidc;

#[oidc::auth_router(device = true)]
struct AuthApi;

fn main() {}
