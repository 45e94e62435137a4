//! Variants stand for their snake-case names, a run of capitals being one word, unless
//! `#[scope("...")]` names the scope; `ALL` and `as_str` come from the `Scopes` trait.
use oidc::Scopes as _;
use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    ReadUser,
    #[scope("billing:write")]
    Billing,
}

#[derive(oidc::Scopes)]
enum Acronyms {
    APIRead,
    OpenID,
    ReadHTTP,
}

fn main() {
    assert_eq!(AppScope::ALL, ["admin", "read_user", "billing:write"]);
    assert_eq!(AppScope::Admin.as_str(), "admin");
    assert_eq!(AppScope::ReadUser.as_str(), "read_user");
    assert_eq!(AppScope::Billing.as_str(), "billing:write");
    assert_eq!(Acronyms::ALL, ["api_read", "open_id", "read_http"]);
    assert_eq!(Acronyms::OpenID.as_str(), "open_id");
}
