use oidc_auth as oidc;

#[oidc::auth_router(prefix = "/api")]
fn routes() {}

fn main() {}
