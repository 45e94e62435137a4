//! Support for the end-to-end tests: a mock provider, the same protected application served by
//! axum and by actix-web on loopback, and a client that calls both.

#![allow(missing_docs, unreachable_pub)]

pub mod apps;
pub mod broker;
pub mod jose;
pub mod logs;
pub mod proxy;
pub mod real_provider;

use std::net::SocketAddr;
use std::sync::mpsc;

use oidc_auth::testing::MockProvider;
use oidc_auth::{ManualClock, OidcAuth, OidcConfig, OidcConfigBuilder};
use serde_json::Value;

/// The web frameworks every end-to-end case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    Axum,
    Actix,
}

pub const FRAMEWORKS: [Framework; 2] = [Framework::Axum, Framework::Actix];

/// The configuration of the property tests: 10 000 cases per property unless `PROPTEST_CASES`
/// says otherwise, and no file of failures kept between runs.
pub fn proptest_config() -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// The runtime a property test's fixture lives on: the servers it starts run there between
/// cases, which each `block_on` it.
pub fn property_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// Asserts what every answer of an auth endpoint carries: the JSON error body
/// (`detail`, `error`, `error_description`) when it is an error, and `Cache-Control:
/// no-store` with `Pragma: no-cache` always. `context` names the answer and the case in a failure.
pub fn assert_error_body_and_no_store(reply: &Reply, context: &str) {
    if reply.status >= 400 {
        let field = |name: &str| reply.body.get(name).and_then(Value::as_str);
        assert!(
            field("error").is_some() && field("detail").is_some(),
            "no JSON error body ({:?}): {context}",
            reply.content_type
        );
    }
    assert_eq!(
        (reply.cache_control.as_deref(), reply.pragma.as_deref()),
        (Some("no-store"), Some("no-cache")),
        "no Cache-Control: no-store and Pragma: no-cache: {context}"
    );
}

/// Asserts that axum and actix-web gave `case` the same status and error code.
pub fn assert_frameworks_agree(axum: &Reply, actix: &Reply, case: &dyn std::fmt::Debug) {
    assert_eq!(
        (axum.status, axum.error()),
        (actix.status, actix.error()),
        "axum and actix-web disagree ({} / {}) on {case:?}",
        axum.raw_body,
        actix.raw_body
    );
}

/// The audience the test servers require.
pub const AUDIENCE: &str = "api";

/// An answer, reduced to what the tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub challenge: Option<String>,
    pub retry_after: Option<String>,
    /// The `Location` header, as sent: the test client follows no redirects.
    pub location: Option<String>,
    /// `Cache-Control`, `Pragma` and `Content-Type`, as sent.
    pub cache_control: Option<String>,
    pub pragma: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    pub raw_body: String,
}

impl Reply {
    /// The top-level `error` of the JSON body.
    pub fn error(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }

    /// Asserts what RFC 6749 section 5.1 asks of an answer that carries tokens, and this
    /// library of every auth endpoint's answer: no cache may keep it.
    pub fn assert_not_cached(&self) {
        assert_eq!(
            (self.cache_control.as_deref(), self.pragma.as_deref()),
            (Some("no-store"), Some("no-cache")),
            "{self:?}"
        );
    }
}

/// One provider, one `OidcAuth`, and both frameworks serving the test application.
pub struct Harness {
    pub idp: MockProvider,
    pub auth: OidcAuth,
    pub clock: Option<ManualClock>,
    axum_addr: SocketAddr,
    actix_addr: SocketAddr,
    actix_stop: Option<actix_web::dev::ServerHandle>,
    client: reqwest::Client,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(handle) = self.actix_stop.take() {
            drop(handle.stop(false));
        }
    }
}

/// A mock provider for the flow tests: access tokens for [`AUDIENCE`], no device-flow pacing.
pub async fn flow_provider() -> MockProvider {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_device_interval(Some(0));
    idp
}

/// The configuration the tests start from: the provider's discovery URL, audience `api`.
pub fn base_config(idp: &MockProvider) -> OidcConfigBuilder {
    OidcConfig::builder()
        .discovery_url(idp.discovery_url())
        .client_id("test-client")
        .audience(AUDIENCE)
}

impl Harness {
    /// A new provider and servers with the default test configuration.
    pub async fn start() -> Self {
        let idp = MockProvider::start().await.expect("mock provider starts");
        Self::with(idp, |b| b, None).await
    }

    /// Servers for `idp` with a configuration adjusted by `adjust`, and optionally a manual clock.
    pub async fn with(
        idp: MockProvider,
        adjust: impl FnOnce(OidcConfigBuilder) -> OidcConfigBuilder,
        clock: Option<ManualClock>,
    ) -> Self {
        let config = adjust(base_config(&idp))
            .build()
            .expect("test configuration is valid");
        let mut builder = OidcAuth::builder(config);
        if let Some(clock) = &clock {
            builder = builder.clock(clock.clone());
        }
        let auth = builder.build();
        Self::serve(idp, auth, clock).await
    }

    /// Serves `auth` with both frameworks.
    pub async fn serve(idp: MockProvider, auth: OidcAuth, clock: Option<ManualClock>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind axum");
        let axum_addr = listener.local_addr().expect("axum address");
        let router = apps::axum_app::router(auth.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let (actix_addr, actix_stop) = spawn_actix(auth.clone());
        Self {
            idp,
            auth,
            clock,
            axum_addr,
            actix_addr,
            actix_stop: Some(actix_stop),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn addr(&self, framework: Framework) -> SocketAddr {
        match framework {
            Framework::Axum => self.axum_addr,
            Framework::Actix => self.actix_addr,
        }
    }

    pub fn url(&self, framework: Framework, path: &str) -> String {
        format!("http://{}{}", self.addr(framework), path)
    }

    /// GET `path` with an optional raw `Authorization` header value.
    pub async fn get(
        &self,
        framework: Framework,
        path: &str,
        authorization: Option<&str>,
    ) -> Reply {
        let header = authorization.map(|value| {
            let value =
                reqwest::header::HeaderValue::from_str(value).expect("a valid header value");
            ("authorization", value)
        });
        self.get_with(framework, path, header.as_slice()).await
    }

    /// GET `path` with these headers, in order (a name may repeat).
    pub async fn get_with(
        &self,
        framework: Framework,
        path: &str,
        headers: &[(&'static str, reqwest::header::HeaderValue)],
    ) -> Reply {
        let mut request = self.client.get(self.url(framework, path));
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        into_reply(
            request
                .send()
                .await
                .expect("request reaches the test server"),
        )
        .await
    }

    /// GET an absolute `url`, such as the provider's redirect to our server-side callback.
    pub async fn get_url(&self, url: &url::Url) -> Reply {
        into_reply(self.client.get(url.as_str()).send().await.expect("answer")).await
    }

    /// GET `path` with `Authorization: Bearer <token>`.
    pub async fn bearer(&self, framework: Framework, path: &str, token: &str) -> Reply {
        self.get(framework, path, Some(&format!("Bearer {token}")))
            .await
    }

    /// The same bearer call against both frameworks; asserts they agree on the status, the
    /// challenge, whether `Retry-After` is there, and the error code of the body.
    pub async fn bearer_both(&self, path: &str, token: &str) -> Reply {
        let axum = self.bearer(Framework::Axum, path, token).await;
        let actix = self.bearer(Framework::Actix, path, token).await;
        assert_eq!(
            axum.status, actix.status,
            "axum and actix-web disagree on {path}: {axum:?} / {actix:?}"
        );
        assert_eq!(
            axum.challenge, actix.challenge,
            "challenges differ on {path}"
        );
        assert_eq!(
            axum.retry_after.is_some(),
            actix.retry_after.is_some(),
            "Retry-After differs on {path}: {axum:?} / {actix:?}"
        );
        assert_eq!(
            axum.body.get("error"),
            actix.body.get("error"),
            "error codes differ on {path}"
        );
        axum
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POST `path` with a form body.
    pub async fn post_form(
        &self,
        framework: Framework,
        path: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let response = self
            .client
            .post(self.url(framework, path))
            .form(form)
            .send()
            .await
            .expect("request reaches the test server");
        into_reply(response).await
    }
}

/// The loopback redirect URI py-oidc-auth-client listens on.
pub const LOOPBACK: &str = "http://localhost:53100/callback";

/// GETs `url` and returns the `Location` of its 302 answer.
pub async fn location(h: &Harness, url: &str) -> url::Url {
    let response = h.client().get(url).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 302, "{url}");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    url::Url::parse(location).expect("absolute Location")
}

/// The browser part of the client's code flow: our `/login`, then the provider's `/authorize`,
/// which redirects to the client's loopback listener with `code` and `state`.
pub async fn browser_login(h: &Harness, fw: Framework, redirect_uri: &str) -> (url::Url, url::Url) {
    let login = client_login_path(redirect_uri);
    let authorize = location(h, &h.url(fw, &login)).await;
    let callback = location(h, authorize.as_str()).await;
    (authorize, callback)
}

/// Exactly what py-oidc-auth-client sends after the browser flow.
pub async fn client_token_call(h: &Harness, fw: Framework, callback: &url::Url) -> Reply {
    let code = query_param(callback, "code").unwrap_or_default();
    let state = query_param(callback, "state").unwrap_or_default();
    let verifier = state.rsplit('|').next().unwrap_or_default().to_owned();
    h.post_form(
        fw,
        "/api/auth/v2/token",
        &[
            ("code", &code),
            ("redirect_uri", LOOPBACK),
            ("grant_type", "authorization_code"),
            ("code_verifier", &verifier),
        ],
    )
    .await
}

/// The client's whole code flow on `fw`: [`browser_login`] to [`LOOPBACK`], then
/// [`client_token_call`]; returns the token endpoint's answer.
pub async fn client_code_flow(h: &Harness, fw: Framework) -> Reply {
    let (_, callback) = browser_login(h, fw, LOOPBACK).await;
    client_token_call(h, fw, &callback).await
}

/// Our login path with the query py-oidc-auth-client sends: `redirect_uri`,
/// `offline_access=true`, `prompt=consent`.
pub fn client_login_path(redirect_uri: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("redirect_uri", redirect_uri),
        ("offline_access", "true"),
        ("prompt", "consent"),
    ])
    .unwrap_or_default();
    format!("/api/auth/v2/login?{query}")
}

/// The value of field `name` in the last token request the provider received; empty when there
/// was none.
pub fn last_token_request_field(idp: &MockProvider, name: &str) -> String {
    idp.last_token_request()
        .unwrap_or_default()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

/// The value of query parameter `name` of `url`.
pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let challenge = header("www-authenticate");
    let retry_after = header("retry-after");
    let location = header("location");
    let (cache_control, pragma) = (header("cache-control"), header("pragma"));
    let content_type = header("content-type");
    let raw_body = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        retry_after,
        location,
        cache_control,
        pragma,
        content_type,
        body,
        raw_body,
    }
}

fn spawn_actix(auth: OidcAuth) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let configure = apps::actix_app::configure(auth);
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(2)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind actix");
            let addr = server.addrs()[0];
            let server = server.run();
            let _ = tx.send((addr, server.handle()));
            let _ = server.await;
        });
    });
    rx.recv().expect("actix server starts")
}

/// Asserts the challenge is `Bearer` with `error="<code>"`.
pub fn assert_invalid_token(reply: &Reply) {
    assert_eq!(reply.status, 401, "{reply:?}");
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "challenge: {challenge}"
    );
    assert_eq!(reply.error(), Some("invalid_token"));
}

/// Neither the body nor the challenge contains the token, one of its segments, or an `echoes`
/// value (checked raw and JSON-escaped). Very short values are skipped: they occur in any text.
pub fn assert_not_echoed(reply: &Reply, token: &str, echoes: &[&str]) {
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    let values = token
        .split('.')
        .chain([token])
        .chain(echoes.iter().copied());
    for value in values.filter(|v| v.len() >= 6) {
        let escaped = serde_json::to_string(value).expect("a string serializes");
        let escaped = escaped.trim_matches('"');
        for form in [value, escaped] {
            assert!(
                !reply.raw_body.contains(form) && !challenge.contains(form),
                "the answer echoes {:?}: {reply:?}",
                form.chars().take(40).collect::<String>()
            );
        }
    }
}
