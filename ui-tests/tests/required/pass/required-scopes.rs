//! Scopes as a space-separated string, as a list, with RFC 6749 punctuation.
use axum::Router;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin read")]
async fn string(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = ["admin", "read:user", "https://api.example/write", "a!#[]~"])]
async fn list(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = ["only"],)]
async fn trailing_comma() {}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/string", get(string))
        .route("/list", get(list))
        .route("/trailing", get(trailing_comma))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
