//! What the demos share: configuration from the environment (or an in-process mock provider
//! when none is configured) and the demo routes for each framework.

use oidc::testing::MockProvider;
use oidc::{IdToken, OidcAuth, OidcConfig};
use oidc_auth as oidc;
use serde_json::{Value, json};

/// The audience the demo expects when it runs against its built-in mock provider.
pub const DEMO_AUDIENCE: &str = "oidc-auth-demo";

/// The authentication handle for a demo, and the mock provider behind it when no provider is
/// configured (keep it alive as long as the server runs).
pub struct DemoAuth {
    /// The handle routes use.
    pub auth: OidcAuth,
    /// The in-process provider, when `OIDC_DISCOVERY_URL` is unset.
    pub mock: Option<MockProvider>,
}

/// Reads `OIDC_*` variables; without `OIDC_DISCOVERY_URL`, starts a mock provider instead.
pub async fn demo_auth() -> Result<DemoAuth, Box<dyn std::error::Error>> {
    demo_auth_from(|name| std::env::var(name).ok()).await
}

/// Like [`demo_auth`], reading variables through `lookup`.
pub async fn demo_auth_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<DemoAuth, Box<dyn std::error::Error>> {
    if lookup("OIDC_DISCOVERY_URL").is_some() {
        let auth = OidcAuth::new(OidcConfig::from_lookup(lookup)?);
        if let Err(e) = auth.warm_up().await {
            eprintln!(
                "identity provider not reachable yet ({e}); protected routes answer 503 until it is"
            );
        }
        return Ok(DemoAuth { auth, mock: None });
    }
    let mock = MockProvider::start().await?;
    let config = OidcConfig::builder()
        .discovery_url(mock.discovery_url())
        .client_id(DEMO_AUDIENCE)
        .audience(DEMO_AUDIENCE)
        .build()?;
    Ok(DemoAuth {
        auth: OidcAuth::new(config),
        mock: Some(mock),
    })
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

/// The address to listen on: `OIDC_AUTH_DEMO_ADDR`, default `127.0.0.1:8080`.
pub fn demo_addr() -> String {
    std::env::var("OIDC_AUTH_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned())
}

/// Prints how to call the demo; with a mock provider, ready-to-paste commands with tokens.
pub fn print_usage(addr: &str, mock: Option<&MockProvider>) {
    println!("oidc-auth demo listening on http://{addr}");
    let Some(mock) = mock else {
        println!("  GET /public  /me  /admin  /feed  (send Authorization: Bearer <token>)");
        println!("  auth endpoints: /api/auth/v2/{{login,callback,token,device,logout,userinfo}}");
        return;
    };
    let user = mock
        .token()
        .audience(DEMO_AUDIENCE)
        .sub("alice")
        .scope("openid")
        .expires_in(86_400)
        .sign();
    let admin = mock
        .token()
        .audience(DEMO_AUDIENCE)
        .sub("root")
        .scope("openid admin")
        .claim("groups", json!(["admins"]))
        .expires_in(86_400)
        .sign();
    println!(
        "No OIDC_DISCOVERY_URL set: using a built-in mock provider at {}",
        mock.issuer()
    );
    println!();
    println!("  curl -i http://{addr}/public");
    println!("  curl -i http://{addr}/me                                   # 401, no token");
    println!("  curl -i http://{addr}/me -H 'Authorization: Bearer {user}'");
    println!(
        "  curl -i http://{addr}/admin -H 'Authorization: Bearer {user}'   # 403, not an admin"
    );
    println!("  curl -i http://{addr}/admin -H 'Authorization: Bearer {admin}'");
    println!("  curl -i http://{addr}/feed");
}

/// The built-in auth endpoints, below `/api` (login, callback, token, device, logout, userinfo).
#[oidc::auth_router(prefix = "/api")]
pub struct AuthApi;

fn me(token: &IdToken) -> Value {
    json!({"sub": token.sub()})
}

fn feed(token: Option<&IdToken>) -> Value {
    json!({"authenticated": token.is_some()})
}

/// The demo routes on axum.
pub mod axum_demo {
    use super::*;
    use axum::routing::get;
    use axum::{Json, Router};

    async fn public() -> Json<Value> {
        Json(json!({"message": "anyone can read this"}))
    }

    #[oidc::required]
    async fn me_h(token: IdToken) -> Json<Value> {
        Json(me(&token))
    }

    #[oidc::required(scopes = "admin", claims(groups = "admins"))]
    async fn admin_h(token: IdToken) -> Json<Value> {
        Json(me(&token))
    }

    #[oidc::optional]
    async fn feed_h(token: Option<IdToken>) -> Json<Value> {
        Json(feed(token.as_ref()))
    }

    /// `GET /public`, `/me`, `/admin`, `/feed`.
    pub fn router(auth: OidcAuth) -> Router {
        Router::new()
            .route("/public", get(public))
            .route("/me", get(me_h))
            .route("/admin", get(admin_h))
            .route("/feed", get(feed_h))
            .merge(AuthApi::router(auth.clone()))
            .with_state(auth)
    }
}

/// The demo routes on actix-web.
pub mod actix_demo {
    use super::*;
    use actix_web::{HttpResponse, web};

    async fn public() -> HttpResponse {
        HttpResponse::Ok().json(json!({"message": "anyone can read this"}))
    }

    #[oidc::required]
    async fn me_h(token: IdToken) -> HttpResponse {
        HttpResponse::Ok().json(me(&token))
    }

    #[oidc::required(scopes = "admin", claims(groups = "admins"))]
    async fn admin_h(token: IdToken) -> HttpResponse {
        HttpResponse::Ok().json(me(&token))
    }

    #[oidc::optional]
    async fn feed_h(token: Option<IdToken>) -> HttpResponse {
        HttpResponse::Ok().json(feed(token.as_ref()))
    }

    /// `GET /public`, `/me`, `/admin`, `/feed`.
    pub fn configure(auth: OidcAuth) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(auth.clone()))
                .route("/public", web::get().to(public))
                .route("/me", web::get().to(me_h))
                .route("/admin", web::get().to(admin_h))
                .route("/feed", web::get().to(feed_h))
                .configure(AuthApi::configure(auth.clone()));
        }
    }
}
