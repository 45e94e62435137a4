use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    #[scope("admin")]
    Root,
}

fn main() {}
