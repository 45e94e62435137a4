//! axum handlers with `Option<IdToken>`, with or without requirements.
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::optional]
async fn feed(token: Option<IdToken>) -> String {
    match token {
        Some(token) => format!("hello {}", token.sub()),
        None => "hello stranger".to_owned(),
    }
}

#[oidc::optional(scopes = "beta", claims(groups = "testers"))]
async fn banner(Path(page): Path<String>, token: Option<IdToken>) -> String {
    format!("{page} {}", token.is_some())
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/feed", get(feed))
        .route("/banner/{page}", get(banner))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
