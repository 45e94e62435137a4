use oidc_auth as oidc;
use oidc::{AuthEndpoint, AuthRouterSpec, OidcAuth, OidcConfig};

#[oidc::auth_router(
    prefix = "/api",
    login = "/auth/v2/signin",
    callback = "/auth/v2/cb",
    device = false,
    userinfo = "/me/info",
    jwks = "/keys.json",
    revoke = "/auth/v2/end",
)]
pub struct AuthApi;

#[oidc::auth_router]
struct Defaults;

mod reexport {
    pub use oidc_auth;
}

#[oidc::auth_router(crate = "crate::reexport::oidc_auth", prefix = "/x")]
struct Renamed;

fn main() {
    let routes = AuthApi::routes();
    assert_eq!(routes.full_path(AuthEndpoint::Login).as_deref(), Some("/api/auth/v2/signin"));
    assert_eq!(routes.full_path(AuthEndpoint::Device), None);
    assert_eq!(routes.full_path(AuthEndpoint::Jwks).as_deref(), Some("/api/keys.json"));
    assert_eq!(routes.full_path(AuthEndpoint::Revoke).as_deref(), Some("/api/auth/v2/end"));
    assert_eq!(Defaults::routes().full_path(AuthEndpoint::Revoke).as_deref(), Some("/auth/v2/revoke"));
    assert_eq!(Defaults::routes().full_path(AuthEndpoint::Token).as_deref(), Some("/auth/v2/token"));
    assert_eq!(Renamed::routes().get_prefix(), "/x");
    let config = OidcConfig::builder()
        .discovery_url("https://idp.example/.well-known/openid-configuration")
        .client_id("app")
        .build()
        .unwrap();
    let auth = OidcAuth::new(config);
    let _router: axum::Router = AuthApi::router(auth.clone()).route("/extra", axum::routing::get(|| async { "x" }));
    let _app = actix_web::App::new().service(AuthApi::scope(auth.clone())).configure(Defaults::configure(auth.clone()));
    // Without a prefix, `scope` gives resources, which leave the application's routes reachable.
    let _app = actix_web::App::new()
        .service(Defaults::scope(auth))
        .route("/me", actix_web::web::get().to(|| async { "me" }));
}
