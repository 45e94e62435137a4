//! A handler that takes no token gets nothing from `#[oidc::optional]`: the route stays public
//! and the check's result goes nowhere, yet the attribute makes it look protected. It is a
//! compile error, on axum as on actix-web.
use actix_web::web;
use axum::extract::Path;
use oidc_auth as oidc;

#[oidc::optional(scopes = "beta")]
async fn no_token() -> &'static str {
    "ok"
}

#[oidc::optional(claims(level = 2))]
async fn with_path(Path(name): Path<String>) -> String {
    name
}

#[oidc::optional]
async fn actix_path(path: web::Path<String>) -> String {
    path.into_inner()
}

fn main() {
    let _ = axum::Router::<oidc::OidcAuth>::new()
        .route("/no-token", axum::routing::get(no_token))
        .route("/with-path/{name}", axum::routing::get(with_path));
    let _ = actix_web::App::new().route("/actix/{name}", web::get().to(actix_path));
}
