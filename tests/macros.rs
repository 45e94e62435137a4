//! Handlers protected only with the macros answer 401 / 403 / 200 on both frameworks.

use actix_web::{App, HttpResponse, Responder, get, test, web};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::get as axum_get;
use oidc::testing::MockProvider;
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
