//! How each framework finds the `OidcAuth` handle, custom error rendering, a hand-written handler
//! with a body, and the warning of a
//! provider outage behind an optional token.

use std::sync::Arc;

use actix_web::{App, HttpResponse, test, web};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use oidc_auth::testing::MockProvider;
use oidc_auth::{AuthError, ErrorRenderer, ErrorResponse, IdToken, OidcAuth};
use oidc_auth_tests::logs::capture_logs;
use oidc_auth_tests::{AUDIENCE, base_config};
use tower::ServiceExt as _;
use tracing::Level;

async fn provider_and_auth() -> (MockProvider, OidcAuth) {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    (idp, auth)
}

async fn me(token: IdToken) -> String {
    token.sub().to_owned()
}

async fn axum_status(app: Router, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_finds_the_handle_in_an_extension() {
    let (idp, auth) = provider_and_auth().await;
    let app = Router::new()
        .route("/me", get(me))
        .layer(axum::Extension(auth));
    let token = idp.token().audience(AUDIENCE).sub("ext").sign();
    assert_eq!(
        axum_status(app, Some(&token)).await,
        (StatusCode::OK, "ext".to_owned())
    );
}

#[derive(Clone)]
struct AppState {
    auth: OidcAuth,
    name: Arc<str>,
}

impl axum::extract::FromRef<AppState> for OidcAuth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_finds_the_handle_in_a_derived_state() {
    let (idp, auth) = provider_and_auth().await;
    let state = AppState {
        auth,
        name: "app".into(),
    };
    assert_eq!(&*state.name, "app");
    let app = Router::new().route("/me", get(me)).with_state(state);
    let token = idp.token().audience(AUDIENCE).sign();
    assert_eq!(axum_status(app, Some(&token)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_without_a_handle_is_a_500_that_names_the_problem() {
    let app = Router::new().route("/me", get(me));
    let (status, body) = axum_status(app, Some("a.b.c")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("not configured"), "{body}");
}

fn renderer() -> ErrorRenderer {
    Arc::new(|err: &AuthError| ErrorResponse {
        status: err.status(),
        headers: vec![(
            "x-auth-error",
            err.kind().code().unwrap_or("missing").to_owned(),
        )],
        content_type: "text/plain",
        body: format!("denied: {}", err.description()).into_bytes(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_uses_a_custom_error_renderer() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::builder(base_config(&idp).build().expect("config"))
        .error_renderer(renderer())
        .build();
    let app = Router::new().route("/me", get(me)).with_state(auth);
    let (status, body) = axum_status(app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, "denied: no bearer token was sent");
}

async fn actix_me(token: IdToken) -> HttpResponse {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[actix_web::test]
async fn actix_finds_a_plain_handle_in_app_data() {
    let (idp, auth) = provider_and_auth().await;
    let app = test::init_service(
        App::new()
            .app_data(auth)
            .route("/me", web::get().to(actix_me)),
    )
    .await;
    let token = idp.token().audience(AUDIENCE).sub("plain").sign();
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(test::read_body(response).await, "plain");
}

#[actix_web::test]
async fn actix_without_a_handle_is_a_500_that_names_the_problem() {
    let app = test::init_service(App::new().route("/me", web::get().to(actix_me))).await;
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header(("authorization", "Bearer a.b.c"))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), 500);
    let body = test::read_body(response).await;
    assert!(String::from_utf8_lossy(&body).contains("not configured"));
}

#[actix_web::test]
async fn actix_uses_a_custom_error_renderer() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::builder(base_config(&idp).build().expect("config"))
        .error_renderer(renderer())
        .build();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(auth))
            .route("/me", web::get().to(actix_me)),
    )
    .await;
    let response = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get("x-auth-error")
            .and_then(|v| v.to_str().ok()),
        Some("missing")
    );
    assert_eq!(
        test::read_body(response).await,
        "denied: no bearer token was sent"
    );
}

/// A renderer whose headers include ones no HTTP response can carry.
fn sloppy_renderer() -> ErrorRenderer {
    Arc::new(|err: &AuthError| ErrorResponse {
        status: err.status(),
        headers: vec![
            ("x-auth-error", "missing".to_owned()),
            ("x-detail", "line one\r\nline two".to_owned()),
            ("bad name", "value".to_owned()),
        ],
        content_type: "text/plain",
        body: b"denied".to_vec(),
    })
}

/// A renderer's header that is not valid HTTP is left out on both frameworks, with one warning
/// for the handle; the status and the other headers stay. actix-web used to answer 500 instead,
/// and axum left the header out without a word.
#[actix_web::test]
async fn an_invalid_renderer_header_is_dropped_with_one_warning_on_both_frameworks() {
    let (logs, _guard) = capture_logs(Level::DEBUG);
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::builder(base_config(&idp).build().expect("config"))
        .error_renderer(sloppy_renderer())
        .build();
    let actix = test::init_service(
        App::new()
            .app_data(web::Data::new(auth.clone()))
            .route("/me", web::get().to(actix_me)),
    )
    .await;
    let axum_app = Router::new().route("/me", get(me)).with_state(auth);
    for _ in 0..2 {
        let response =
            test::call_service(&actix, test::TestRequest::get().uri("/me").to_request()).await;
        assert_eq!(response.status(), 401, "actix-web");
        let headers = response.headers();
        assert_eq!(
            headers.get("x-auth-error").and_then(|v| v.to_str().ok()),
            Some("missing")
        );
        assert!(headers.get("x-detail").is_none() && headers.get("bad name").is_none());
        assert_eq!(test::read_body(response).await, "denied");

        let response = axum_app
            .clone()
            .oneshot(Request::get("/me").body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "axum");
        assert_eq!(
            response
                .headers()
                .get("x-auth-error")
                .and_then(|v| v.to_str().ok()),
            Some("missing")
        );
        assert!(response.headers().get("x-detail").is_none());
    }
    assert_eq!(
        logs.warnings("error renderer returned headers that are not valid HTTP"),
        1,
        "{}",
        logs.text()
    );
}

async fn actix_feed(token: Option<IdToken>) -> HttpResponse {
    HttpResponse::Ok().body(token.is_some().to_string())
}

async fn axum_feed(token: Option<IdToken>) -> String {
    token.is_some().to_string()
}

/// A provider outage is logged as a warning when a hand-written `Option<IdToken>` gives `None`
/// on actix-web, whose own `Option` extractor used to hide it at debug level; on axum it is
/// logged once per request, not twice.
#[actix_web::test]
async fn an_optional_token_during_a_provider_outage_is_logged_on_both_frameworks() {
    let (logs, _guard) = capture_logs(Level::DEBUG);
    let (idp, auth) = provider_and_auth().await;
    idp.set_fault_all(oidc_auth::testing::Fault::Down);
    let token = idp.token().audience(AUDIENCE).sign();
    let actix = test::init_service(
        App::new()
            .app_data(web::Data::new(auth.clone()))
            .route("/feed", web::get().to(actix_feed)),
    )
    .await;
    let request = test::TestRequest::get()
        .uri("/feed")
        .insert_header(("authorization", format!("Bearer {token}")))
        .to_request();
    let response = test::call_service(&actix, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(test::read_body(response).await, "false");
    assert_eq!(
        logs.warnings("bearer token not checked: identity provider unavailable"),
        1,
        "actix-web: {}",
        logs.text()
    );

    let axum_app = Router::new()
        .route("/feed", get(axum_feed))
        .with_state(auth);
    let request = Request::get("/feed")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = axum_app.oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        logs.warnings("optional authentication skipped: identity provider unavailable"),
        1,
        "axum: {}",
        logs.text()
    );
    assert_eq!(
        logs.warnings("bearer token not checked"),
        1,
        "axum warns once: {}",
        logs.text()
    );
}

/// An outage under load writes one warning per kind every ten seconds, not one per request:
/// 20 requests to a required route and 20 with an optional token, on both frameworks, log one
/// "not checked" and one "optional authentication skipped" warning (the rest at DEBUG), and
/// ten seconds later the next request warns again.
#[actix_web::test]
async fn an_outage_under_load_warns_once_every_ten_seconds() {
    let (logs, _guard) = capture_logs(Level::DEBUG);
    let idp = MockProvider::start().await.expect("provider");
    let clock = oidc_auth::ManualClock::new(oidc_auth::Clock::now(&oidc_auth::SystemClock));
    let auth = OidcAuth::builder(base_config(&idp).build().expect("config"))
        .clock(clock.clone())
        .build();
    idp.set_fault_all(oidc_auth::testing::Fault::Down);
    // Valid two hours either side of the start, for the clock set back below.
    let token = idp
        .token()
        .audience(AUDIENCE)
        .issued_at(oidc_auth::Clock::now(&clock) - 7200)
        .expires_in(4 * 3600)
        .sign();
    let actix = test::init_service(
        App::new()
            .app_data(web::Data::new(auth.clone()))
            .route("/me", web::get().to(me))
            .route("/feed", web::get().to(actix_feed)),
    )
    .await;
    let axum_app = Router::new()
        .route("/me", get(me))
        .route("/feed", get(axum_feed))
        .with_state(auth);
    let round = || async {
        for path in ["/me", "/feed"] {
            for _ in 0..5 {
                let request = test::TestRequest::get()
                    .uri(path)
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .to_request();
                let status = test::call_service(&actix, request).await.status().as_u16();
                assert_eq!(status, if path == "/me" { 503 } else { 200 });
                let request = Request::get(path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .expect("request");
                let response = axum_app.clone().oneshot(request).await.expect("answer");
                let status = response.status().as_u16();
                assert_eq!(status, if path == "/me" { 503 } else { 200 });
            }
        }
    };
    let not_checked = "bearer token not checked: identity provider unavailable";
    let skipped = "optional authentication skipped: identity provider unavailable";
    round().await;
    round().await;
    assert_eq!(logs.warnings(not_checked), 1, "{}", logs.text());
    assert_eq!(logs.warnings(skipped), 1, "{}", logs.text());
    assert!(logs.text().contains("DEBUG"), "{}", logs.text());
    clock.advance(10);
    round().await;
    assert_eq!(logs.warnings(not_checked), 2, "{}", logs.text());
    assert_eq!(logs.warnings(skipped), 2, "{}", logs.text());
    // A clock set back an hour does not silence the warnings for that hour.
    clock.advance(-3600);
    round().await;
    round().await;
    assert_eq!(logs.warnings(not_checked), 3, "{}", logs.text());
    assert_eq!(logs.warnings(skipped), 3, "{}", logs.text());
}

async fn axum_echo(token: IdToken, axum::Json(body): axum::Json<serde_json::Value>) -> String {
    format!("{} {body}", token.sub())
}

async fn actix_echo(
    oidc_auth::Guarded(token, (body,)): oidc_auth::Guarded<
        IdToken,
        (web::Json<serde_json::Value>,),
    >,
) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", token.sub(), body.into_inner()))
}

async fn actix_echo_unguarded(token: IdToken, body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", token.sub(), body.into_inner()))
}

/// What a request to the echo handlers got: status, `WWW-Authenticate`, body.
type Answer = (u16, String, Vec<u8>);

fn actix_post_json(token: &str, body: &'static str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/echo")
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
}

const CHALLENGE: &str = "www-authenticate";

/// A header's value as text, empty when absent.
fn text(value: Option<&[u8]>) -> String {
    String::from_utf8_lossy(value.unwrap_or_default()).into_owned()
}

async fn actix_answer(response: actix_web::dev::ServiceResponse) -> Answer {
    let status = response.status().as_u16();
    let challenge = text(response.headers().get(CHALLENGE).map(|v| v.as_bytes()));
    (status, challenge, test::read_body(response).await.to_vec())
}

async fn axum_answer(app: &Router, token: &str, body: &'static str) -> Answer {
    let request = Request::post("/echo")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("answer");
    let status = response.status().as_u16();
    let challenge = text(response.headers().get(CHALLENGE).map(|v| v.as_bytes()));
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (status, challenge, body.to_vec())
}

/// A hand-written handler that takes a token and a JSON body, on an instance that has fetched
/// no keys yet: a valid token waits for the cold fetch and its body reaches the handler; a
/// forged token (a key id the provider never published) forces one JWKS fetch and is 401
/// `invalid_token`, and so is a forged token with a body that is not JSON: the token is
/// checked before the body, so the body's error tells an unauthenticated caller nothing.
/// On actix-web that takes `Guarded` (as the macros emit it): actix-web polls a handler's
/// plain parameters side by side, so there the body's 400 comes first, as the README says.
#[actix_web::test]
async fn a_handler_with_a_body_waits_for_a_key_fetch_and_checks_the_token_first() {
    use oidc_auth::testing::Endpoint;
    let idp = MockProvider::start().await.expect("provider");
    let valid = idp.token().audience(AUDIENCE).sub("poster").sign();
    let forged = idp.token().audience(AUDIENCE).kid("never-published").sign();
    let requests = [
        (&valid, r#"{"n":1}"#, 200, r#"poster {"n":1}"#),
        (&forged, r#"{"n":2}"#, 401, ""),
        (&forged, "{not json", 401, ""),
    ];
    let check = |label: &str, i: usize, fetched: usize, (status, challenge, body): Answer| {
        let (_, _, expected, echoed) = requests[i];
        assert_eq!(status, expected, "{label} request {i}");
        if expected == 401 {
            assert!(
                challenge.contains("invalid_token"),
                "{label}: {challenge:?}"
            );
        } else {
            assert_eq!(body, echoed.as_bytes(), "{label} request {i}");
        }
        // The cold fetch, then the one the unknown key id forces; then the cooldown.
        assert_eq!(
            fetched,
            usize::from(i < 2),
            "{label} request {i}: JWKS fetches"
        );
    };

    let actix = test::init_service(
        App::new()
            .app_data(OidcAuth::new(base_config(&idp).build().expect("config")))
            .route("/echo", web::post().to(actix_echo)),
    )
    .await;
    for (i, (token, body, ..)) in requests.iter().enumerate() {
        let jwks_before = idp.hits(Endpoint::Jwks);
        let response = test::call_service(&actix, actix_post_json(token, body).to_request()).await;
        let answer = actix_answer(response).await;
        check(
            "actix-web",
            i,
            idp.hits(Endpoint::Jwks) - jwks_before,
            answer,
        );
    }
    let axum_app = Router::new()
        .route("/echo", axum::routing::post(axum_echo))
        .with_state(OidcAuth::new(base_config(&idp).build().expect("config")));
    for (i, (token, body, ..)) in requests.iter().enumerate() {
        let jwks_before = idp.hits(Endpoint::Jwks);
        let answer = axum_answer(&axum_app, token, body).await;
        check("axum", i, idp.hits(Endpoint::Jwks) - jwks_before, answer);
    }

    // Without `Guarded`, actix-web polls the body beside the token: the body's 400 comes first.
    let unguarded = test::init_service(
        App::new()
            .app_data(OidcAuth::new(base_config(&idp).build().expect("config")))
            .route("/echo", web::post().to(actix_echo_unguarded)),
    )
    .await;
    for (token, body, status) in [(&valid, r#"{"n":1}"#, 200), (&forged, "{not json", 400)] {
        let response =
            test::call_service(&unguarded, actix_post_json(token, body).to_request()).await;
        assert_eq!(response.status().as_u16(), status, "unguarded {body}");
    }
}
