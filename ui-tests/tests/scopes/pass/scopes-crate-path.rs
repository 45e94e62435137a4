//! `#[scopes(crate = "...")]` names the runtime crate when it is re-exported.
mod reexport {
    pub use oidc_auth;
}

use reexport::oidc_auth::{IdToken, Scopes};

#[derive(Scopes)]
#[scopes(crate = "crate::reexport::oidc_auth")]
enum AppScope {
    Admin,
}

#[reexport::oidc_auth::required(crate = "crate::reexport::oidc_auth", scopes = [AppScope::Admin])]
async fn admin(token: IdToken) -> String {
    token.sub().to_owned()
}

fn main() {
    let _ = admin;
    assert_eq!(AppScope::ALL, ["admin"]);
    assert_eq!(AppScope::Admin.as_str(), "admin");
}
