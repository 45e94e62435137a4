//! After an error the enum keeps its `Scopes` impls, so its uses add no errors of their own.
use oidc::Scopes as _;
use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    #[scope("read user")]
    Read,
    Admin,
}

#[oidc::required(scopes = [AppScope::Read, AppScope::Admin])]
async fn handler() {}

fn main() {
    let _ = AppScope::ALL;
    let _ = AppScope::Admin.as_str();
}
