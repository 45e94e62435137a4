use oidc_auth as oidc;

#[oidc::auth_router(prefix = "/:tenant")]
struct AuthApi;

fn main() {}
