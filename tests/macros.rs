//! Handlers protected only with the macros answer 401 / 403 / 200 on both frameworks.

use std::time::Duration;

use actix_web::{App, HttpResponse, Responder, get, test, web};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::get as axum_get;
use oidc::testing::{Endpoint, Fault, MockProvider, SigningAlg};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;
use oidc_auth_tests::{AUDIENCE, base_config};
use serde_json::json;
use tower::ServiceExt as _;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    #[scope("reports:read")]
    Reports,
}

#[oidc::required(scopes = "admin", claims(groups = "admins"))]
async fn axum_admin(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = [AppScope::Reports])]
async fn axum_reports() -> impl IntoResponse {
    "reports"
}

#[oidc::required(claims("realm_access.roles" = ["ops", "sre"], email_verified = true))]
async fn axum_ops(
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
    token: IdToken,
) -> Result<String, (axum::http::StatusCode, &'static str)> {
    if query.get("fail").map(String::as_str) == Some("1") {
        return Err((axum::http::StatusCode::INTERNAL_SERVER_ERROR, "failed"));
    }
    Ok(token.sub().to_owned())
}

#[oidc::optional(scopes = [AppScope::Admin])]
async fn axum_feed(token: Option<IdToken>) -> String {
    format!("{}", token.is_some())
}

#[oidc::required(scopes = "admin", claims(groups = "admins"))]
async fn actix_admin(token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[oidc::required(scopes = "admin")]
#[get("/stacked-below")]
async fn actix_stacked_below(token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[get("/stacked-above")]
#[oidc::required(scopes = "admin")]
async fn actix_stacked_above(token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[oidc::optional]
async fn actix_feed(token: Option<IdToken>) -> impl Responder {
    HttpResponse::Ok().body(format!("{}", token.is_some()))
}

/// A body extractor before the token: the guard still runs first.
#[oidc::required]
async fn actix_body_first(body: web::Json<(String, u64)>, token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(format!("{} {}", token.sub(), body.0.0))
}

#[oidc::optional]
async fn actix_optional_body_first(
    body: web::Json<(String, u64)>,
    token: Option<IdToken>,
) -> impl Responder {
    HttpResponse::Ok().body(format!("{} {}", token.is_some(), body.0.0))
}

/// On axum the body extractor must be last; the guard is a parts extractor and runs before it.
#[oidc::required]
async fn axum_body_last(token: IdToken, body: axum::Json<(String, u64)>) -> String {
    format!("{} {}", token.sub(), body.0.0)
}

/// Requests that a JSON extractor of `(String, u64)` refuses by itself: a wrong `Content-Type`,
/// a body over its 2 MiB limit, and a JSON body of the wrong shape (an element missing). Each with
/// its `Content-Type`, its body, and the status the extractor gives on actix-web and on axum
/// (actix-web answers a wrong `Content-Type` with 400 "Content type error").
fn refused_bodies() -> [(&'static str, &'static str, Vec<u8>, u16, u16); 3] {
    [
        (
            "wrong content type",
            "text/plain",
            br#"["a", 1]"#.to_vec(),
            400,
            415,
        ),
        (
            "too large",
            "application/json",
            vec![b' '; 3 << 20],
            413,
            413,
        ),
        (
            "missing field",
            "application/json",
            br#"["a"]"#.to_vec(),
            400,
            422,
        ),
    ]
}

struct Tokens {
    admin: String,
    user: String,
}

fn tokens(idp: &MockProvider) -> Tokens {
    Tokens {
        admin: idp
            .token()
            .audience(AUDIENCE)
            .sub("root")
            .scope("admin reports:read")
            .claim("groups", json!(["admins"]))
            .sign(),
        user: idp
            .token()
            .audience(AUDIENCE)
            .sub("alice")
            .scope("openid")
            .sign(),
    }
}

async fn axum_call(app: &Router, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_protected_axum_handlers_answer_401_403_200() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    let t = tokens(&idp);
    let app = Router::new()
        .route("/admin", axum_get(axum_admin))
        .route("/reports", axum_get(axum_reports))
        .route("/ops", axum_get(axum_ops))
        .route("/feed", axum_get(axum_feed))
        .with_state(auth);
    assert_eq!(axum_call(&app, "/admin", None).await.0, 401);
    assert_eq!(axum_call(&app, "/admin", Some(&t.user)).await.0, 403);
    assert_eq!(
        axum_call(&app, "/admin", Some(&t.admin)).await,
        (200, "root".to_owned())
    );
    assert_eq!(axum_call(&app, "/reports", Some(&t.user)).await.0, 403);
    assert_eq!(
        axum_call(&app, "/reports", Some(&t.admin)).await,
        (200, "reports".to_owned())
    );
    let ops = idp
        .token()
        .audience(AUDIENCE)
        .sub("op")
        .claim("realm_access", json!({"roles": ["sre"]}))
        .claim("email_verified", json!(true))
        .sign();
    assert_eq!(
        axum_call(&app, "/ops", Some(&ops)).await,
        (200, "op".to_owned())
    );
    assert_eq!(axum_call(&app, "/ops?fail=1", Some(&ops)).await.0, 500);
    assert_eq!(axum_call(&app, "/ops", Some(&t.admin)).await.0, 403);
    assert_eq!(axum_call(&app, "/feed", None).await.1, "false");
    assert_eq!(axum_call(&app, "/feed", Some(&t.user)).await.1, "false");
    assert_eq!(axum_call(&app, "/feed", Some(&t.admin)).await.1, "true");
}

#[actix_web::test]
async fn macro_protected_actix_handlers_answer_401_403_200() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    let t = tokens(&idp);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(auth))
            .route("/admin", web::get().to(actix_admin))
            .route("/feed", web::get().to(actix_feed))
            .service(actix_stacked_below)
            .service(actix_stacked_above),
    )
    .await;
    for path in ["/admin", "/stacked-below", "/stacked-above"] {
        for (token, expected) in [(None, 401), (Some(&t.user), 403), (Some(&t.admin), 200)] {
            let mut request = test::TestRequest::get().uri(path);
            if let Some(token) = token {
                request = request.insert_header(("authorization", format!("Bearer {token}")));
            }
            let response = test::call_service(&app, request.to_request()).await;
            assert_eq!(response.status().as_u16(), expected, "{path} {token:?}");
        }
    }
    let feed = test::call_service(&app, test::TestRequest::get().uri("/feed").to_request()).await;
    assert_eq!(test::read_body(feed).await, "false");
}

/// A body extractor written before the token parameter must not answer before the guard: on
/// actix-web, extractors run in parameter order, so the body used to be read and refused (415,
/// 413, or a deserialize error describing the expected body) for a caller with no token at all.
#[actix_web::test]
async fn actix_body_extractor_before_the_token_answers_only_after_authentication() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    let t = tokens(&idp);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(auth))
            .route("/body-first", web::post().to(actix_body_first))
            .route(
                "/optional-body-first",
                web::post().to(actix_optional_body_first),
            ),
    )
    .await;
    let request = |content_type: &str, body: &[u8], token: Option<&str>| {
        let mut request = test::TestRequest::post()
            .uri("/body-first")
            .insert_header(("content-type", content_type.to_owned()))
            .set_payload(body.to_vec());
        if let Some(token) = token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        request.to_request()
    };
    for (case, content_type, body, refused, _) in refused_bodies() {
        let response = test::call_service(&app, request(content_type, &body, None)).await;
        assert_eq!(response.status().as_u16(), 401, "{case}");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{case}"
        );
        let answer = test::read_body(response).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("tuple"),
            "{case}: the expected body shape is not revealed"
        );
        // An authenticated caller reaches the extractor, which refuses the request itself.
        let response = test::call_service(&app, request(content_type, &body, Some(&t.user))).await;
        assert_eq!(response.status().as_u16(), refused, "{case} with a token");
    }
    let valid = test::TestRequest::post()
        .uri("/body-first")
        .insert_header(("authorization", format!("Bearer {}", t.user)))
        .set_json(json!(["file", 3]))
        .to_request();
    assert_eq!(
        test::read_body(test::call_service(&app, valid).await).await,
        "alice file"
    );
    let optional = test::TestRequest::post()
        .uri("/optional-body-first")
        .set_json(json!(["file", 3]))
        .to_request();
    assert_eq!(
        test::read_body(test::call_service(&app, optional).await).await,
        "false file"
    );
}

/// The same requests on axum, where the body extractor is last: 401 before the body is looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_body_extractor_after_the_token_answers_only_after_authentication() {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    let t = tokens(&idp);
    let app = Router::new()
        .route("/body-last", axum::routing::post(axum_body_last))
        .with_state(auth);
    for (case, content_type, body, _, refused) in refused_bodies() {
        for (token, expected) in [(None, 401), (Some(&t.user), refused)] {
            let mut request = Request::post("/body-last").header("content-type", content_type);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request.body(Body::from(body.clone())).expect("request");
            let response = app.clone().oneshot(request).await.expect("answer");
            assert_eq!(response.status().as_u16(), expected, "{case} {token:?}");
            if token.is_none() {
                assert_eq!(
                    response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok()),
                    Some("Bearer"),
                    "{case}"
                );
            }
        }
    }
}

/// A forged token with the provider's issuer and a `kid` nobody published: the guard has to ask
/// the provider for its keys (held back here for 300 ms) before it can refuse. The body
/// extractor must not answer in the meantime, on either framework; the answer is the guard's
/// 401. A valid token signed with a key published a moment ago also waits for the keys, and then
/// reaches the body extractor, which refuses the body itself.
#[actix_web::test]
async fn a_guard_waiting_on_the_provider_answers_before_the_body_extractor() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_fault(Endpoint::Jwks, Fault::Slow(Duration::from_millis(300)));
    for (case, content_type, body, actix_refused, axum_refused) in refused_bodies() {
        let new_key = idp.add_key(SigningAlg::RS256);
        let forged = idp
            .token()
            .audience(AUDIENCE)
            .kid(&format!("unpublished-{case}"))
            .sign();
        let fresh = idp
            .token()
            .audience(AUDIENCE)
            .sub("alice")
            .kid(&new_key)
            .sign();
        for (token, actix_expected, axum_expected) in
            [(&forged, 401, 401), (&fresh, actix_refused, axum_refused)]
        {
            // A handle with cold caches for every request, so that each waits for the keys.
            let actix = {
                let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
                let app = test::init_service(
                    App::new()
                        .app_data(web::Data::new(auth))
                        .route("/body-first", web::post().to(actix_body_first)),
                )
                .await;
                let request = test::TestRequest::post()
                    .uri("/body-first")
                    .insert_header(("content-type", content_type))
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .set_payload(body.clone())
                    .to_request();
                let jwks_before = idp.hits(Endpoint::Jwks);
                let response = test::call_service(&app, request).await;
                let fetched = idp.hits(Endpoint::Jwks) > jwks_before;
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().expect("ascii").to_owned());
                (response.status().as_u16(), challenge, fetched)
            };
            assert_eq!(actix.0, actix_expected, "actix-web, {case}, {token:.20}");
            assert_eq!(
                actix.1.is_some(),
                actix_expected == 401,
                "actix-web, {case}: {:?}",
                actix.1
            );
            assert!(actix.2, "actix-web, {case}: the guard fetched the keys");
            let axum = {
                let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
                let app = Router::new()
                    .route("/body-last", axum::routing::post(axum_body_last))
                    .with_state(auth);
                let request = Request::post("/body-last")
                    .header("content-type", content_type)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::from(body.clone()))
                    .expect("request");
                let jwks_before = idp.hits(Endpoint::Jwks);
                let response = app.oneshot(request).await.expect("answer");
                (
                    response.status().as_u16(),
                    response.headers().contains_key("www-authenticate"),
                    idp.hits(Endpoint::Jwks) > jwks_before,
                )
            };
            assert_eq!(axum.0, axum_expected, "axum, {case}, {token:.20}");
            assert_eq!(axum.1, axum_expected == 401, "axum, {case}");
            assert!(axum.2, "axum, {case}: the guard fetched the keys");
        }
    }
}
