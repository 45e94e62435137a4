//! A generic handler, and parameters whose types name its generics or hold `impl Trait`-free
//! extractors, compile beside the token: only the token under another name is refused.
use axum::extract::{Json, Path, Query};
use oidc_auth as oidc;
use oidc_auth::{IdToken, OidcAuth};
use serde_json::Value;

#[oidc::optional(scopes = "beta")]
async fn generic<T: serde::de::DeserializeOwned + Send + 'static>(
    token: Option<IdToken>,
    Path(id): Path<u32>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<T>,
) -> String {
    let _ = (token, id, query, body);
    String::new()
}

#[oidc::optional]
async fn plain(token: Option<IdToken>, Json(body): Json<Value>) -> String {
    let _ = (token, body);
    String::new()
}

fn app(auth: OidcAuth) -> axum::Router {
    axum::Router::new()
        .route("/generic/{id}", axum::routing::post(generic::<Value>))
        .route("/plain", axum::routing::post(plain))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
