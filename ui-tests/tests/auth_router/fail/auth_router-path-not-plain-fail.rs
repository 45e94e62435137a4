use oidc_auth as oidc;

#[oidc::auth_router(logout = "/auth/logout?next=1")]
struct AuthApi;

fn main() {}
