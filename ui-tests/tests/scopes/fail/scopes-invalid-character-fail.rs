use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scope("read\\user")]
    Read,
}

fn main() {}
