use oidc_auth as oidc;

#[derive(oidc::Scopes)]
#[scopes(rename_all = "kebab-case")]
enum AppScope {
    Admin,
}

fn main() {}
