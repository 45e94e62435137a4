//! `#[scope("...")]` names the scope of one variant; on the enum it would be ignored.
use oidc_auth as oidc;
use oidc_auth::Scopes as _;

#[derive(oidc::Scopes)]
#[scope("admin")]
enum AppScope {
    Root,
}

fn main() {
    let _ = AppScope::Root.as_str();
}
