use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope<const N: usize> {
    Admin,
}

fn main() {}
