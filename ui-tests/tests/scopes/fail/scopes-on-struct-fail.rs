use oidc_auth as oidc;

#[derive(oidc::Scopes)]
struct AppScope;

fn main() {}
