//! The token parameter keeps the user's pattern: `mut token`, `_token`.
use axum::Router;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn mutable(mut token: IdToken) -> String {
    token = token.clone();
    token.sub().to_owned()
}

#[oidc::required(scopes = "admin")]
async fn unused(_token: IdToken) -> &'static str {
    "ok"
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/mutable", get(mutable))
        .route("/unused", get(unused))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
