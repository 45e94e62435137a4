use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scope("read,write")]
    ReadWrite,
}

fn main() {}
