//! Protected handlers and the auth endpoints in a build with actix-web alone
//! (`--no-default-features --features actix-web,testing`): what a dependent that turns the
//! default features off and picks actix-web builds and serves. `#[required]` with a scope and a
//! claim, `#[optional]` and `#[auth_router]` answer as in the workspace build.
//!
//! With the `axum` feature too, the workspace tests cover the same; this file then has nothing
//! of its own to check.
#![cfg(not(feature = "axum"))]

use actix_web::{App, HttpResponse, test, web};
use oidc_auth::testing::MockProvider;
use oidc_auth::{IdToken, OidcAuth, OidcConfig};
use serde_json::json;

const AUDIENCE: &str = "actix-only";

#[oidc_auth::required(scopes = "admin", claims(groups = "admins"))]
async fn admin(token: IdToken) -> HttpResponse {
    HttpResponse::Ok().body(format!("admin {}", token.sub()))
}

#[oidc_auth::optional]
async fn feed(token: Option<IdToken>) -> HttpResponse {
    HttpResponse::Ok().body(format!("signed in: {}", token.is_some()))
}

/// The auth endpoints below `/api`.
#[oidc_auth::auth_router(prefix = "/api")]
struct Api;

#[actix_web::test]
async fn guards_and_auth_endpoints_answer_in_an_actix_only_build() {
    let idp = MockProvider::start().await.expect("provider");
    let config = OidcConfig::builder()
        .discovery_url(idp.discovery_url())
        .client_id("client")
        .audience(AUDIENCE)
        .build()
        .expect("config");
    let auth = OidcAuth::new(config);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(auth.clone()))
            .route("/admin", web::get().to(admin))
            .route("/feed", web::get().to(feed))
            .service(Api::scope(auth.clone())),
    )
    .await;
    let admin_token = idp
        .token()
        .audience(AUDIENCE)
        .sub("alice")
        .scope("openid admin")
        .claim("groups", json!(["admins"]))
        .sign();
    let plain_token = idp.token().audience(AUDIENCE).sub("bob").sign();
    let call = |path: &str, token: Option<&str>| {
        let mut request = test::TestRequest::get().uri(path);
        if let Some(token) = token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        request.to_request()
    };
    let answer = |response: actix_web::dev::ServiceResponse| async move {
        let status = response.status().as_u16();
        let body = test::read_body(response).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(
        answer(test::call_service(&app, call("/admin", None)).await)
            .await
            .0,
        401
    );
    assert_eq!(
        answer(test::call_service(&app, call("/admin", Some(&plain_token))).await)
            .await
            .0,
        403
    );
    assert_eq!(
        answer(test::call_service(&app, call("/admin", Some(&admin_token))).await).await,
        (200, "admin alice".to_owned())
    );
    assert_eq!(
        answer(test::call_service(&app, call("/feed", None)).await).await,
        (200, "signed in: false".to_owned())
    );
    assert_eq!(
        answer(test::call_service(&app, call("/feed", Some(&plain_token))).await).await,
        (200, "signed in: true".to_owned())
    );
    // The auth endpoints are mounted: userinfo answers the token, a wrong method is 405.
    let (status, body) =
        answer(test::call_service(&app, call("/api/auth/v2/userinfo", Some(&plain_token))).await)
            .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        answer(test::call_service(&app, call("/api/auth/v2/token", None)).await).await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("invalid_request"), "{body}");
}
