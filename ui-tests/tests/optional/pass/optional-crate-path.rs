//! `crate = "..."` with a re-export, and a fully qualified `Option`.
use axum::Router;
use axum::routing::get;

mod reexport {
    pub use oidc_auth;
}

#[oidc_auth::optional(crate = "crate::reexport::oidc_auth")]
async fn feed(token: core::option::Option<reexport::oidc_auth::IdToken>) -> String {
    format!("{}", token.is_some())
}

fn app(auth: oidc_auth::OidcAuth) -> Router {
    Router::new().route("/feed", get(feed)).with_state(auth)
}

fn main() {
    let _ = app;
}
