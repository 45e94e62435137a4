//! Variants stand for their snake-case names unless `#[scope("...")]` names the scope; `ALL` and
//! `as_str` come from the `Scopes` trait.
use oidc::Scopes as _;
use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    ReadUser,
    #[scope("billing:write")]
    Billing,
}

fn main() {
    assert_eq!(AppScope::ALL, ["admin", "read_user", "billing:write"]);
    assert_eq!(AppScope::Admin.as_str(), "admin");
    assert_eq!(AppScope::ReadUser.as_str(), "read_user");
    assert_eq!(AppScope::Billing.as_str(), "billing:write");
}
