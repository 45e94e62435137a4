use oidc_auth as oidc;

#[oidc::auth_router(prefix = API)]
struct AuthApi;

fn main() {}
