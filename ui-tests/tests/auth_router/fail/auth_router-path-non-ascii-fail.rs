use oidc_auth as oidc;

#[oidc::auth_router(login = "/anmelden/ü")]
struct AuthApi;

fn main() {}
