//! `#[scopes(...)]` configures the derive for the whole enum; on a variant it would be ignored.
use oidc_auth as oidc;
use oidc_auth::Scopes as _;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scopes(crate = "::oidc_auth")]
    Admin,
    #[scopes("read")]
    Read,
}

fn main() {
    let _ = (AppScope::Admin.as_str(), AppScope::Read.as_str());
}
