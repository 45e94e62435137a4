use oidc_auth as oidc;

#[oidc::auth_router(login = "/a", login = "/b")]
struct AuthApi;

fn main() {}
