use oidc_auth as oidc;

#[derive(oidc::Scopes)]
#[scopes(krate = "::oidc_auth")]
enum AppScope {
    Admin,
}

fn main() {}
