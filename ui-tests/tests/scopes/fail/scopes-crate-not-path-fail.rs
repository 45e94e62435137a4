use oidc_auth as oidc;

#[derive(oidc::Scopes)]
#[scopes(crate = "not a path")]
enum AppScope {
    Admin,
}

fn main() {}
