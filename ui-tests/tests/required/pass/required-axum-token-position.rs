//! The token parameter may come first, in the middle, last, or not at all, between other
//! extractors; a `Json` body stays last.
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;
use std::collections::HashMap;

#[oidc::required]
async fn first(token: IdToken, Path(id): Path<u32>) -> String {
    format!("{} {id}", token.sub())
}

#[oidc::required(scopes = "write")]
async fn middle(
    Path(id): Path<u32>,
    token: IdToken,
    Json(body): Json<serde_json::Value>,
) -> String {
    format!("{} {id} {body}", token.sub())
}

#[oidc::required(scopes = "read")]
async fn last(
    Path(id): Path<u32>,
    Query(q): Query<HashMap<String, String>>,
    token: IdToken,
) -> String {
    format!("{} {id} {}", token.sub(), q.len())
}

#[oidc::required(scopes = "admin")]
async fn absent(
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<serde_json::Value>,
) -> String {
    format!("{} {body}", q.len())
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/first/{id}", get(first))
        .route("/middle/{id}", post(middle))
        .route("/last/{id}", get(last))
        .route("/absent", post(absent))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
