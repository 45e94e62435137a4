//! A stateless router finds the `OidcAuth` in an `Extension` layer.
use axum::routing::get;
use axum::{Extension, Router};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn admin(token: IdToken) -> String {
    token.sub().to_owned()
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/admin", get(admin))
        .layer(Extension(auth))
}

fn main() {
    let _ = app;
}
