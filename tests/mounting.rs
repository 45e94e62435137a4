//! The auth endpoints mounted each way the frameworks offer: axum's `auth_router`, actix-web's
//! `auth_scope`, `auth_services` and `auth_config`, and the methods of `#[oidc::auth_router]`.
//! Every mount answers a wrong method the same way, keeps the token endpoint's body limit to
//! itself, and leaves the application's own routes reachable; a switched-off device route
//! answers 503; `AuthRoutes` refuses what a router could not mount.

use actix_web::{App, HttpResponse, test, web};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use oidc::testing::MockProvider;
use oidc::{AuthEndpoint, AuthRoutes, OidcAuth};
use oidc_auth as oidc;
use oidc_auth_tests::base_config;
use tower::ServiceExt as _;

#[oidc::auth_router(prefix = "/api")]
struct Prefixed;

#[oidc::auth_router]
struct Unprefixed;

/// The device endpoint (POST) at the login's path (GET), as `AuthRoutes::path` allows.
#[oidc::auth_router(prefix = "/api", device = "/auth/v2/login")]
struct SharedPath;

/// The device route switched off.
#[oidc::auth_router(prefix = "/api", device = false)]
struct NoDevice;

/// The device route switched off and the token endpoint at its default path.
#[oidc::auth_router(prefix = "/api", device = false, token = "/auth/v2/device")]
struct TokenAtTheDevicePath;

async fn auth() -> (MockProvider, OidcAuth) {
    let idp = MockProvider::start().await.expect("provider");
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    (idp, auth)
}

fn api_routes() -> AuthRoutes {
    AuthRoutes::new().prefix("/api").expect("a valid prefix")
}

/// Status, `Allow` header and body of an answer.
type Answer = (u16, Option<String>, String);

async fn axum_call(app: &Router, method: &str, path: &str, body: Vec<u8>) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("answer");
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, allow, String::from_utf8_lossy(&body).into_owned())
}

/// [`axum_call`] on an actix-web test service (a macro: actix-web does not name the request
/// type its test services take).
macro_rules! actix_call {
    ($app:expr, $method:expr, $path:expr, $body:expr) => {{
        let request = test::TestRequest::default()
            .method($method.parse().expect("method"))
            .uri($path)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload($body)
            .to_request();
        let response = test::call_service($app, request).await;
        let status = response.status().as_u16();
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = test::read_body(response).await;
        let answer: Answer = (status, allow, String::from_utf8_lossy(&body).into_owned());
        answer
    }};
}

/// The wrong-method requests and the `Allow` each must name.
const WRONG_METHODS: [(&str, &str, &str); 4] = [
    ("POST", "/api/auth/v2/login", "GET"),
    ("GET", "/api/auth/v2/token", "POST"),
    ("PUT", "/api/auth/v2/revoke", "POST"),
    ("DELETE", "/api/auth/v2/userinfo", "GET"),
];

fn assert_405(answer: &Answer, allow: &str, what: &str) {
    assert_eq!(answer.0, 405, "{what}: {answer:?}");
    let methods: Vec<&str> = answer
        .1
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(methods, allow.split(", ").collect::<Vec<_>>(), "{what}");
    // The JSON error body of every other refusal, not the framework's empty answer.
    let body: serde_json::Value = serde_json::from_str(&answer.2).unwrap_or_default();
    assert_eq!(body["error"], "invalid_request", "{what}: {answer:?}");
    assert_eq!(body["detail"], "Method Not Allowed", "{what}: {answer:?}");
    assert!(body["error_description"].is_string(), "{what}: {answer:?}");
}

/// A wrong method on an auth endpoint is 405 with `Allow` and the JSON error body, whichever
/// way the endpoints are mounted. An actix-web scope used to register each endpoint with its method guard on the
/// resource, so the path did not match at all and the answer was 404.
#[actix_web::test]
async fn a_wrong_method_is_405_with_allow_on_every_mount() {
    let (_idp, auth) = auth().await;
    let axum_app: Router = oidc::axum::auth_router(auth.clone(), &api_routes());
    for (method, path, allow) in WRONG_METHODS {
        let answer = axum_call(&axum_app, method, path, Vec::new()).await;
        assert_405(&answer, allow, &format!("axum {method} {path}"));
    }
    let scope = test::init_service(
        App::new().service(oidc::actix::auth_scope(auth.clone(), &api_routes())),
    )
    .await;
    let services = test::init_service(
        App::new().service(oidc::actix::auth_services(auth.clone(), &api_routes())),
    )
    .await;
    let config = test::init_service(
        App::new().configure(oidc::actix::auth_config(auth.clone(), api_routes())),
    )
    .await;
    let macro_scope = test::init_service(App::new().service(Prefixed::scope(auth.clone()))).await;
    for (method, path, allow) in WRONG_METHODS {
        for (mount, answer) in [
            ("auth_scope", actix_call!(&scope, method, path, Vec::new())),
            (
                "auth_services",
                actix_call!(&services, method, path, Vec::new()),
            ),
            (
                "auth_config",
                actix_call!(&config, method, path, Vec::new()),
            ),
            (
                "Prefixed::scope",
                actix_call!(&macro_scope, method, path, Vec::new()),
            ),
        ] {
            assert_405(&answer, allow, &format!("actix {mount} {method} {path}"));
        }
    }
}

/// The 16 KiB limit of the token endpoint stays on the token and revoke endpoints: a route the
/// application adds to the scope reads its own, larger bodies. The scope used to carry the limit
/// for everything in it.
#[actix_web::test]
async fn the_token_body_limit_stays_off_routes_added_to_the_scope() {
    let (_idp, auth) = auth().await;
    let big = vec![b'x'; 32 * 1024];
    let upload = |body: String| async move { HttpResponse::Ok().body(body.len().to_string()) };
    let app = test::init_service(
        App::new().service(
            oidc::actix::auth_scope(auth.clone(), &api_routes())
                .route("/upload", web::post().to(upload)),
        ),
    )
    .await;
    let answer = actix_call!(&app, "POST", "/api/upload", big.clone());
    assert_eq!(
        (answer.0, answer.2.as_str()),
        (200, "32768"),
        "actix: {answer:?}"
    );
    let mut form = b"refresh-token=".to_vec();
    form.extend_from_slice(&big);
    let token = actix_call!(&app, "POST", "/api/auth/v2/token", form.clone());
    assert_eq!(token.0, 413, "actix token: {token:?}");
    let axum_app: Router = oidc::axum::auth_router(auth, &api_routes()).route(
        "/api/upload",
        axum::routing::post(|body: String| async move { body.len().to_string() }),
    );
    let answer = axum_call(&axum_app, "POST", "/api/upload", big).await;
    assert_eq!(
        (answer.0, answer.2.as_str()),
        (200, "32768"),
        "axum: {answer:?}"
    );
    let token = axum_call(&axum_app, "POST", "/api/auth/v2/token", form).await;
    assert_eq!(token.0, 413, "axum token: {token:?}");
}

/// `scope()` of a router without a prefix leaves the application's routes reachable. It used to
/// be a scope at `""`, which took every request: `/me` answered 404.
#[actix_web::test]
async fn an_unprefixed_macro_scope_leaves_the_applications_routes_reachable() {
    let (_idp, auth) = auth().await;
    let app = test::init_service(App::new().service(Unprefixed::scope(auth.clone())).route(
        "/me",
        web::get().to(|| async { HttpResponse::Ok().body("me") }),
    ))
    .await;
    let me = actix_call!(&app, "GET", "/me", Vec::new());
    assert_eq!((me.0, me.2.as_str()), (200, "me"));
    // The auth endpoints are there too: a login without its redirect URI is the endpoint's 400.
    let login = actix_call!(&app, "GET", "/auth/v2/login", Vec::new());
    assert_eq!(login.0, 400, "{login:?}");
    let wrong = actix_call!(&app, "POST", "/auth/v2/login", Vec::new());
    assert_405(&wrong, "GET", "POST /auth/v2/login");
}

/// A GET and a POST endpoint may share a path: both are served, and any other method is 405
/// naming both. actix-web's `auth_config` used to register one resource per endpoint, so the
/// second at a path was never reached. `#[oidc::auth_router]` allows the same (it refused any
/// two endpoints on one path).
#[actix_web::test]
async fn a_get_and_a_post_endpoint_may_share_a_path() {
    let (_idp, auth) = auth().await;
    let routes = api_routes()
        .path(AuthEndpoint::Device, "/auth/v2/login")
        .expect("GET login and POST device may share a path");
    let axum_app: Router = oidc::axum::auth_router(auth.clone(), &routes);
    let config = test::init_service(
        App::new().configure(oidc::actix::auth_config(auth.clone(), routes.clone())),
    )
    .await;
    let scope =
        test::init_service(App::new().service(oidc::actix::auth_scope(auth.clone(), &routes)))
            .await;
    let declared: Router = SharedPath::router(auth.clone());
    let declared_actix =
        test::init_service(App::new().configure(SharedPath::configure(auth))).await;
    let path = "/api/auth/v2/login";
    let answers = [
        (
            "axum, declared",
            [
                axum_call(&declared, "GET", path, Vec::new()).await,
                axum_call(&declared, "POST", path, Vec::new()).await,
                axum_call(&declared, "PUT", path, Vec::new()).await,
            ],
        ),
        (
            "actix configure, declared",
            [
                actix_call!(&declared_actix, "GET", path, Vec::new()),
                actix_call!(&declared_actix, "POST", path, Vec::new()),
                actix_call!(&declared_actix, "PUT", path, Vec::new()),
            ],
        ),
        (
            "axum",
            [
                axum_call(&axum_app, "GET", path, Vec::new()).await,
                axum_call(&axum_app, "POST", path, Vec::new()).await,
                axum_call(&axum_app, "PUT", path, Vec::new()).await,
            ],
        ),
        (
            "actix auth_config",
            [
                actix_call!(&config, "GET", path, Vec::new()),
                actix_call!(&config, "POST", path, Vec::new()),
                actix_call!(&config, "PUT", path, Vec::new()),
            ],
        ),
        (
            "actix auth_scope",
            [
                actix_call!(&scope, "GET", path, Vec::new()),
                actix_call!(&scope, "POST", path, Vec::new()),
                actix_call!(&scope, "PUT", path, Vec::new()),
            ],
        ),
    ];
    for (mount, [get, post, put]) in answers {
        // Login without a redirect URI: its own 400. Device: the mock provider's device flow.
        assert_eq!(get.0, 400, "{mount} GET: {get:?}");
        assert!(get.2.contains("redirect_uri"), "{mount} GET: {get:?}");
        assert_eq!(post.0, 200, "{mount} POST: {post:?}");
        assert!(post.2.contains("device_code"), "{mount} POST: {post:?}");
        assert_405(&put, "GET, POST", &format!("{mount} PUT"));
    }
}

/// A switched-off device route, declared (`device = false`) or at run time
/// (`AuthRoutes::disable`), answers POST at its default path with 503
/// `temporarily_unavailable` and calls no provider: the answer at which py-oidc-auth-client,
/// which tries the device flow first, signs in with the browser, where a 404 ended its login.
/// Another method there is 405. When the token endpoint takes that path, it is the token
/// endpoint that answers there.
#[actix_web::test]
async fn a_switched_off_device_route_answers_503_so_that_clients_use_the_browser() {
    use oidc::testing::Endpoint;
    let (idp, auth) = auth().await;
    let routes = api_routes().disable(AuthEndpoint::Device);
    let axum_app: Router = oidc::axum::auth_router(auth.clone(), &routes);
    let declared: Router = NoDevice::router(auth.clone());
    let scope =
        test::init_service(App::new().service(oidc::actix::auth_scope(auth.clone(), &routes)))
            .await;
    let declared_actix =
        test::init_service(App::new().configure(NoDevice::configure(auth.clone()))).await;
    let path = "/api/auth/v2/device";
    let answers = [
        (
            "axum",
            [
                axum_call(&axum_app, "POST", path, Vec::new()).await,
                axum_call(&axum_app, "GET", path, Vec::new()).await,
            ],
        ),
        (
            "axum, declared",
            [
                axum_call(&declared, "POST", path, Vec::new()).await,
                axum_call(&declared, "GET", path, Vec::new()).await,
            ],
        ),
        (
            "actix auth_scope",
            [
                actix_call!(&scope, "POST", path, Vec::new()),
                actix_call!(&scope, "GET", path, Vec::new()),
            ],
        ),
        (
            "actix configure, declared",
            [
                actix_call!(&declared_actix, "POST", path, Vec::new()),
                actix_call!(&declared_actix, "GET", path, Vec::new()),
            ],
        ),
    ];
    for (mount, [post, get]) in answers {
        assert_eq!(post.0, 503, "{mount} POST: {post:?}");
        let body: serde_json::Value = serde_json::from_str(&post.2).expect("JSON");
        assert_eq!(
            body["error"], "temporarily_unavailable",
            "{mount}: {post:?}"
        );
        assert_405(&get, "POST", &format!("{mount} GET"));
    }
    assert_eq!(idp.hits(Endpoint::Device), 0, "no provider call");

    let token_there: Router = TokenAtTheDevicePath::router(auth.clone());
    let token_there_actix =
        test::init_service(App::new().configure(TokenAtTheDevicePath::configure(auth))).await;
    for (mount, answer) in [
        (
            "axum",
            axum_call(&token_there, "POST", path, Vec::new()).await,
        ),
        (
            "actix",
            actix_call!(&token_there_actix, "POST", path, Vec::new()),
        ),
    ] {
        // The token endpoint's own refusal of an empty form.
        assert_eq!(answer.0, 400, "{mount}: {answer:?}");
        assert!(answer.2.contains("invalid_request"), "{mount}: {answer:?}");
    }
}

/// `AuthRoutes` refuses, with a `ConfigError` naming the method, every prefix or path the
/// routers would refuse (axum panicked when mounting them) or read differently, and two
/// endpoints of one method on one path.
// `test` is actix-web's here.
#[core::prelude::v1::test]
fn auth_routes_refuse_what_a_router_cannot_mount() {
    for prefix in [
        "api",
        "/api/",
        "/",
        "/a//b",
        "/:tenant",
        "/{tenant}",
        "/*rest",
        "/a b",
        "/ü",
        "/a%20b",
        "/a?b",
        "/.",
        "/api/..",
    ] {
        let err = AuthRoutes::new().prefix(prefix).expect_err(prefix);
        assert_eq!(err.option(), "prefix", "{prefix}: {err}");
    }
    for path in [
        "signin",
        "",
        "/",
        "/auth/",
        "/auth//login",
        "/auth/:x",
        "/auth/{x}",
        "/anmelden/ü",
        "/a#b",
        "/auth/../login",
        "/./login",
    ] {
        let err = AuthRoutes::new()
            .path(AuthEndpoint::Login, path)
            .expect_err(path);
        assert_eq!(err.option(), "path", "{path}: {err}");
    }
    let clash = AuthRoutes::new()
        .path(AuthEndpoint::Login, "/auth/v2/callback")
        .expect_err("two GET endpoints on one path");
    assert!(clash.message().contains("Callback"), "{clash}");
    let clash = AuthRoutes::new()
        .path(AuthEndpoint::Revoke, "/auth/v2/token")
        .expect_err("two POST endpoints on one path");
    assert!(clash.message().contains("Token"), "{clash}");
    // What is accepted mounts: letters, digits, RFC 3986 sub-delims (but `*`), `@` and `-._~`,
    // dots included where they are not a whole segment.
    let fine = AuthRoutes::new()
        .prefix("/api-v1.2_~/.well-known/...")
        .and_then(|r| r.path(AuthEndpoint::Login, "/sign-in@x!$&'()+,;="))
        .and_then(|r| {
            r.disable(AuthEndpoint::Callback)
                .path(AuthEndpoint::Login, "/auth/v2/callback")
        })
        .expect("valid routes");
    assert_eq!(
        fine.full_path(AuthEndpoint::Login).as_deref(),
        Some("/api-v1.2_~/.well-known/.../auth/v2/callback")
    );
}
