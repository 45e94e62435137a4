//! The crate is named once: a second `crate = "..."`, in another `#[scopes(...)]` or in the
//! same one, would silently replace the first.
use oidc_auth as oidc;
use oidc_auth::Scopes as _;

mod reexport {
    pub use oidc_auth;
}

#[derive(oidc::Scopes)]
#[scopes(crate = "crate::reexport::oidc_auth")]
#[scopes(crate = "::oidc_auth")]
enum AppScope {
    Admin,
}

#[derive(oidc::Scopes)]
#[scopes(crate = "::oidc_auth", crate = "crate::reexport::oidc_auth")]
enum OtherScope {
    Read,
}

fn main() {
    let _ = (AppScope::Admin.as_str(), OtherScope::Read.as_str());
}
