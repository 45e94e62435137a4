//! The protected test application, once per framework, with the same routes.

use oidc_auth::{Authorized, ClaimRule, ClaimValue, IdToken, Policy};
use serde_json::{Value, json};

/// Scope `admin` and group `admins`.
pub struct Admins;
impl Policy for Admins {
    const SCOPES: &'static [&'static str] = &["admin"];
    const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new("groups", &[ClaimValue::Str("admins")])];
}

/// A Keycloak realm role, `ops` or `sre`.
pub struct Ops;
impl Policy for Ops {
    const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new(
        "realm_access.roles",
        &[ClaimValue::Str("ops"), ClaimValue::Str("sre")],
    )];
}

/// A verified e-mail address (a JSON boolean).
pub struct Verified;
impl Policy for Verified {
    const CLAIMS: &'static [ClaimRule] =
        &[ClaimRule::new("email_verified", &[ClaimValue::Bool(true)])];
}

/// Two scopes and two claims that must all hold.
pub struct ReadWrite;
impl Policy for ReadWrite {
    const SCOPES: &'static [&'static str] = &["read", "write"];
    const CLAIMS: &'static [ClaimRule] = &[
        ClaimRule::new("groups", &[ClaimValue::Str("staff")]),
        ClaimRule::new("tenant", &[ClaimValue::Str("acme")]),
    ];
}

/// The auth endpoints of the test application: every endpoint, below `/api`.
pub fn auth_routes() -> oidc_auth::AuthRoutes {
    oidc_auth::AuthRoutes::new()
        .prefix("/api")
        .expect("`/api` is a valid prefix")
}

fn me(token: &IdToken) -> Value {
    json!({"sub": token.sub()})
}

fn feed(token: Option<&IdToken>) -> Value {
    json!({"authenticated": token.is_some()})
}

/// The axum application.
pub mod axum_app {
    use super::*;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use oidc_auth::OidcAuth;

    /// `/public`, `/me`, `/admin`, `/ops`, `/verified`, `/readwrite`, `/feed`, `POST /upload`.
    pub fn router(auth: OidcAuth) -> Router {
        Router::new()
            .route("/public", get(|| async { Json(json!({"public": true})) }))
            .route("/me", get(|t: IdToken| async move { Json(me(&t)) }))
            .route(
                "/admin",
                get(|Authorized(t, ..): Authorized<Admins>| async move { Json(me(&t)) }),
            )
            .route(
                "/ops",
                get(|Authorized(t, ..): Authorized<Ops>| async move { Json(me(&t)) }),
            )
            .route(
                "/verified",
                get(|Authorized(t, ..): Authorized<Verified>| async move { Json(me(&t)) }),
            )
            .route(
                "/readwrite",
                get(|Authorized(t, ..): Authorized<ReadWrite>| async move { Json(me(&t)) }),
            )
            .route(
                "/feed",
                get(|t: Option<IdToken>| async move { Json(feed(t.as_ref())) }),
            )
            .route(
                "/upload",
                post(|t: IdToken, body: String| async move {
                    Json(json!({"sub": t.sub(), "len": body.len()}))
                }),
            )
            .merge(oidc_auth::axum::auth_router(
                auth.clone(),
                &super::auth_routes(),
            ))
            .route(
                "/api/auth/v2/auth-ports",
                get(|| async { Json(json!({"valid_ports": [8080, 8443]})) }),
            )
            .with_state(auth)
    }
}

/// The actix-web application.
pub mod actix_app {
    use super::*;
    use actix_web::{HttpResponse, web};
    use oidc_auth::OidcAuth;

    async fn me_h(t: IdToken) -> HttpResponse {
        HttpResponse::Ok().json(me(&t))
    }
    async fn admin_h(Authorized(t, ..): Authorized<Admins>) -> HttpResponse {
        HttpResponse::Ok().json(me(&t))
    }
    async fn ops_h(Authorized(t, ..): Authorized<Ops>) -> HttpResponse {
        HttpResponse::Ok().json(me(&t))
    }
    async fn verified_h(Authorized(t, ..): Authorized<Verified>) -> HttpResponse {
        HttpResponse::Ok().json(me(&t))
    }
    async fn readwrite_h(Authorized(t, ..): Authorized<ReadWrite>) -> HttpResponse {
        HttpResponse::Ok().json(me(&t))
    }
    async fn feed_h(t: Option<IdToken>) -> HttpResponse {
        HttpResponse::Ok().json(feed(t.as_ref()))
    }
    async fn upload_h(t: IdToken, body: String) -> HttpResponse {
        HttpResponse::Ok().json(json!({"sub": t.sub(), "len": body.len()}))
    }

    /// The same routes as the axum application.
    pub fn configure(auth: OidcAuth) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(auth.clone()))
                .route(
                    "/public",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"public": true})) }),
                )
                .route("/me", web::get().to(me_h))
                .route("/admin", web::get().to(admin_h))
                .route("/ops", web::get().to(ops_h))
                .route("/verified", web::get().to(verified_h))
                .route("/readwrite", web::get().to(readwrite_h))
                .route("/feed", web::get().to(feed_h))
                .route("/upload", web::post().to(upload_h))
                .route(
                    "/api/auth/v2/auth-ports",
                    web::get().to(|| async {
                        HttpResponse::Ok().json(json!({"valid_ports": [8080, 8443]}))
                    }),
                );
            oidc_auth::actix::auth_config(auth.clone(), super::auth_routes())(cfg);
        }
    }
}
