use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scope("")]
    Admin,
}

fn main() {}
