//! The return type and the body are untouched: `impl IntoResponse`, `Result` with `?` and an
//! early `return`.
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn opaque(token: IdToken) -> impl IntoResponse {
    (StatusCode::OK, token.sub().to_owned())
}

#[oidc::required(scopes = "read")]
async fn fallible(Path(raw): Path<String>, token: IdToken) -> Result<String, (StatusCode, String)> {
    if raw.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "empty".to_owned()));
    }
    let n: u32 = raw
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, "not a number".to_owned()))?;
    Ok(format!("{} {n}", token.sub()))
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/opaque", get(opaque))
        .route("/fallible/{raw}", get(fallible))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
