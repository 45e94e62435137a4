use oidc_auth as oidc;

#[oidc::auth_router(prefix = "/api", login = "/a/{x}", logout = "/a/{y}")]
struct AuthApi;

fn main() {}
