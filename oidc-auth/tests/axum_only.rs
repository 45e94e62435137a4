//! Protected handlers in a build with axum alone (`--no-default-features --features
//! axum,testing`), where the macros keep the guard as a plain first parameter: the signature
//! other attributes and `middleware::from_fn` understand. `#[debug_handler]` below the macro,
//! with and without a token parameter, above it with one, and a protected middleware, answer 401
//! without a token and run with one.
//!
//! Above the macro, `#[debug_handler]` checks a copy of the handler as written, which the macro
//! then gives its guard: that copy takes one parameter more than written when the handler takes
//! no token, and does not compile. Below, it checks the handler as the macro leaves it.
//!
//! With the `actix-web` feature too the handlers take the other shape (see `Guarded`), which
//! the workspace tests cover; this file then has nothing of its own to check.
#![cfg(not(feature = "actix-web"))]

use axum::body::Body;
use axum::debug_handler;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use oidc_auth::testing::MockProvider;
use oidc_auth::{IdToken, OidcAuth, OidcConfig};
use tower::ServiceExt as _;

const AUDIENCE: &str = "axum-only";

#[derive(Clone)]
struct App {
    auth: OidcAuth,
    greeting: &'static str,
}

impl axum::extract::FromRef<App> for OidcAuth {
    fn from_ref(app: &App) -> OidcAuth {
        app.auth.clone()
    }
}

#[debug_handler(state = App)]
#[oidc_auth::required]
async fn above(token: IdToken, State(app): State<App>, Json(n): Json<u32>) -> String {
    format!("{} {} {n}", app.greeting, token.sub())
}

#[oidc_auth::required]
#[debug_handler]
async fn below(State(app): State<App>, token: IdToken, Json(n): Json<u32>) -> String {
    format!("{} {} {n}", app.greeting, token.sub())
}

/// No token parameter: the macro adds the guard, and `#[debug_handler]` below sees it.
#[oidc_auth::required]
#[debug_handler]
async fn tokenless(State(app): State<App>) -> String {
    format!("{} stranger", app.greeting)
}

/// A middleware protecting everything behind it, handing the token on.
#[oidc_auth::required]
async fn gate(token: IdToken, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(token);
    next.run(request).await
}

async fn behind_the_gate(Extension(token): Extension<IdToken>) -> String {
    format!("inside, {}", token.sub())
}

async fn call(app: Router, method: &str, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = if method == "POST" { "7" } else { "" };
    let response = app
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn plain_guard_handlers_and_middleware_are_protected() {
    let idp = MockProvider::start().await.expect("provider");
    let config = OidcConfig::builder()
        .discovery_url(idp.discovery_url())
        .client_id("client")
        .audience(AUDIENCE)
        .build()
        .expect("config");
    let auth = OidcAuth::new(config);
    let token = idp.token().audience(AUDIENCE).sub("alice").sign();
    let app = App {
        auth: auth.clone(),
        greeting: "hello",
    };
    let handlers = Router::new()
        .route("/above", post(above))
        .route("/below", post(below))
        .route("/tokenless", get(tokenless))
        .with_state(app);
    let gated = Router::new()
        .route("/inside", get(behind_the_gate))
        .layer(middleware::from_fn(gate))
        .layer(Extension(auth));
    for path in ["/above", "/below"] {
        assert_eq!(
            call(handlers.clone(), "POST", path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            call(handlers.clone(), "POST", path, Some(&token)).await,
            (StatusCode::OK, "hello alice 7".to_owned()),
            "{path}"
        );
    }
    assert_eq!(
        call(handlers.clone(), "GET", "/tokenless", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(handlers, "GET", "/tokenless", Some(&token)).await,
        (StatusCode::OK, "hello stranger".to_owned())
    );
    assert_eq!(
        call(gated.clone(), "GET", "/inside", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(gated, "GET", "/inside", Some(&token)).await,
        (StatusCode::OK, "inside, alice".to_owned())
    );
}
