use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {}

fn main() {}
