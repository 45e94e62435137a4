//! A variant declares one scope: a second `#[scope("...")]` would silently replace the first.
use oidc_auth as oidc;
use oidc_auth::Scopes as _;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scope("billing:read")]
    #[scope("billing:write")]
    Billing,
}

fn main() {
    let _ = AppScope::Billing.as_str();
}
