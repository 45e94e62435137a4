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
    // The mock provider stands in for OIDC_DISCOVERY_URL; every other variable (broker mode,
    // store URL, trusted issuers, ...) is read as for a real provider.
    let discovery = mock.discovery_url();
    let config = OidcConfig::from_lookup(|name| match name {
        "OIDC_DISCOVERY_URL" => Some(discovery.clone()),
        "OIDC_CLIENT_ID" | "OIDC_AUDIENCE" => {
            lookup(name).or_else(|| Some(DEMO_AUDIENCE.to_owned()))
        }
        other => lookup(other),
    })?;
    let auth = OidcAuth::new(config);
    if let Err(e) = auth.warm_up().await {
        eprintln!("warm-up failed ({e}); the affected routes answer 503 until it succeeds");
    }
    Ok(DemoAuth {
        auth,
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
    print_broker_usage(addr, mock);
    let Some(mock) = mock else {
        println!("  GET /public  /me  /admin  /feed  (send Authorization: Bearer <token>)");
        println!(
            "  auth endpoints: /api/auth/v2/{{login,callback,token,device,logout,userinfo,revoke}}"
        );
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

/// In broker mode (`OIDC_BROKER_MODE=true`): where the keys are published, and with a mock
/// provider and `OIDC_BROKER_EXCHANGE_CLIENTS=id:secret`, how to get a token of this server.
fn print_broker_usage(addr: &str, mock: Option<&MockProvider>) {
    // The spellings the library takes for true, in any case: `OIDC_BROKER_MODE=TRUE` turns
    // broker mode on there, so it must print the broker's commands here too.
    let enabled = std::env::var("OIDC_BROKER_MODE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    });
    if !enabled {
        return;
    }
    println!("  broker mode: public keys at http://{addr}/api/auth/v2/.well-known/jwks.json");
    let client = std::env::var("OIDC_BROKER_EXCHANGE_CLIENTS")
        .ok()
        .and_then(|v| v.split(',').next().map(str::to_owned))
        .filter(|c| c.contains(':'));
    if let (Some(mock), Some(client)) = (mock, client) {
        let audience = std::env::var("OIDC_AUDIENCE").unwrap_or_else(|_| DEMO_AUDIENCE.to_owned());
        let subject = mock
            .token()
            .audience(&audience)
            .sub("alice")
            .scope("openid")
            .expires_in(86_400)
            .sign();
        println!(
            "  {}",
            exchange_command(&format!("http://{addr}"), &client, &subject)
        );
    }
}

/// A shell line that exchanges `subject` for a token of the broker at `base` and keeps it in
/// `$TOKEN`.
pub fn exchange_command(base: &str, client: &str, subject: &str) -> String {
    format!(
        "TOKEN=$(curl -s -u {client} {base}/api/auth/v2/token \\\n      -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\\n      -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\\n      -d subject_token={subject} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
    )
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

/// Two broker instances that trust each other, in one process, against one mock provider:
/// what `cargo run --example federation` serves.
pub mod federation {
    use super::*;

    /// The exchange client both instances accept.
    pub const CLIENT: &str = "svc:svc-secret";
    /// The broker audience both instances share, so each accepts the other's tokens.
    pub const AUDIENCE: &str = "oidc-auth-federation";

    /// The running pair.
    pub struct Federation {
        /// The provider both instances use.
        pub mock: MockProvider,
        /// Base URLs of instance A and instance B (each the other's trusted issuer).
        pub urls: [String; 2],
    }

    /// Binds `a` and `b` (such as `127.0.0.1:8081`; port 0 picks one), configures each as a
    /// broker whose issuer is its own URL and which trusts the other, and serves both with
    /// axum. Broker state is in memory.
    pub async fn start(a: &str, b: &str) -> Result<Federation, Box<dyn std::error::Error>> {
        let mock = MockProvider::start().await?;
        let listeners = [
            tokio::net::TcpListener::bind(a).await?,
            tokio::net::TcpListener::bind(b).await?,
        ];
        let urls = [
            format!("http://{}", listeners[0].local_addr()?),
            format!("http://{}", listeners[1].local_addr()?),
        ];
        for (index, listener) in listeners.into_iter().enumerate() {
            let own = urls[index].clone();
            let peer = urls[1 - index].clone();
            let discovery = mock.discovery_url();
            // The same variables a deployment sets.
            let config = OidcConfig::from_lookup(|name| match name {
                "OIDC_DISCOVERY_URL" => Some(discovery.clone()),
                "OIDC_CLIENT_ID" | "OIDC_AUDIENCE" => Some(DEMO_AUDIENCE.to_owned()),
                "OIDC_PROXY" => Some(own.clone()),
                "OIDC_BROKER_MODE" => Some("true".to_owned()),
                "OIDC_BROKER_STORE_URL" => Some("memory:".to_owned()),
                "OIDC_BROKER_AUDIENCE" => Some(AUDIENCE.to_owned()),
                "OIDC_TRUSTED_ISSUERS" => Some(peer.clone()),
                "OIDC_BROKER_JWKS_PATH" => Some("/api/auth/v2/.well-known/jwks.json".to_owned()),
                "OIDC_BROKER_EXCHANGE_CLIENTS" => Some(CLIENT.to_owned()),
                _ => None,
            })?;
            let auth = OidcAuth::new(config);
            auth.warm_up().await?;
            let router = axum_demo::router(auth);
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
        }
        Ok(Federation { mock, urls })
    }

    /// A provider token to exchange at either instance.
    pub fn subject_token(mock: &MockProvider) -> String {
        mock.token()
            .audience(DEMO_AUDIENCE)
            .sub("alice")
            .scope("openid")
            .expires_in(86_400)
            .sign()
    }
}
