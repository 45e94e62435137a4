use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    Tenant(String),
}

fn main() {}
