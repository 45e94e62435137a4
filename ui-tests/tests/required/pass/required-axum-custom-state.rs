//! An application state gives the `OidcAuth` through `FromRef` (written by hand: axum's
//! `macros` feature is off).
use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[derive(Clone)]
struct AppState {
    auth: OidcAuth,
    greeting: String,
}

impl FromRef<AppState> for OidcAuth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

#[oidc::required(scopes = "admin")]
async fn greet(State(state): State<AppState>, token: IdToken) -> String {
    format!("{} {}", state.greeting, token.sub())
}

#[oidc::required]
async fn bare() -> &'static str {
    "ok"
}

fn app(auth: OidcAuth) -> Router {
    let state = AppState {
        auth,
        greeting: "hello".to_owned(),
    };
    Router::new()
        .route("/greet", get(greet))
        .route("/bare", get(bare))
        .with_state(state)
}

fn main() {
    let _ = app;
}
