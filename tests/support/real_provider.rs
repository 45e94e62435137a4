//! The real OpenID provider: the npm package `oidc-provider` (tests/oidc-provider/server.mjs),
//! started on 127.0.0.1 by the test itself, and a headless browser that submits its login,
//! consent, device and logout forms.
//!
//! ```ignore
//! let Some(p) = RealProvider::start().await else { return };   // skipped without node_modules
//! let pkce = Pkce::new();
//! let url = p.authorize_url(Client::Public, "http://localhost:53100/callback", "openid admin", "st", &pkce);
//! let redirect = p.login(&url).await;                            // stops at the client's redirect
//! let (status, tokens) = p.token(Client::Public, &[
//!     ("grant_type", "authorization_code"),
//!     ("code", &redirect.code()),
//!     ("redirect_uri", "http://localhost:53100/callback"),
//!     ("code_verifier", &pkce.verifier),
//! ]).await;
//! ```
//!
//! Without `tests/oidc-provider/node_modules` (or without `node`), [`RealProvider::start`] prints
//! that the test was skipped and returns `None`, unless the environment variable `CI` is set: then
//! it panics, since CI must run these tests. Install with `npm ci` in `tests/oidc-provider`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

/// The account the login helper signs in as; the provider knows its claims.
pub const USERNAME: &str = "alice";
/// The `aud` of the provider's JWT access tokens.
pub const API_AUDIENCE: &str = "api";
/// The resource indicator whose access tokens are JWTs with `aud` = [`API_AUDIENCE`]. The
/// provider uses it when the client names no resource.
pub const API_RESOURCE: &str = "urn:oidc-auth-tests:api";
/// Every scope the provider knows: the OpenID ones plus the API scope `admin`.
pub const ALL_SCOPES: &str = "openid profile email groups offline_access admin";
/// The device code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BROWSER_STEPS: usize = 25;
const SKIP_MESSAGE: &str =
    "skipped: oidc-provider not installed; run npm ci in tests/oidc-provider";

/// The two clients the provider registers. Both are `application_type: native`, so any port of
/// `http://localhost` and `http://127.0.0.1` is accepted in their redirect URIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `confidential-client`, authenticating with `client_secret_basic`.
    Confidential,
    /// `public-client`, no authentication (PKCE only).
    Public,
}

impl Client {
    pub fn id(self) -> &'static str {
        match self {
            Client::Confidential => "confidential-client",
            Client::Public => "public-client",
        }
    }

    pub fn secret(self) -> Option<&'static str> {
        match self {
            Client::Confidential => Some("confidential-secret"),
            Client::Public => None,
        }
    }
}

/// Extra registrations for a provider started with [`RealProvider::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ProviderOptions {
    /// Redirect URIs registered for both clients besides the built-in loopback ones
    /// (`http://localhost|127.0.0.1:<any port>/callback`, `/auth/v2/callback`,
    /// `/api/auth/v2/callback`).
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs besides the built-in ones (`http://localhost|127.0.0.1:<53100..=53105>/`
    /// and `.../logged-out`). oidc-provider matches these exactly, port included.
    pub post_logout_redirect_uris: Vec<String>,
}

/// The endpoints of the provider's discovery document.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub device_authorization: String,
    pub end_session: String,
    pub jwks: String,
    pub userinfo: String,
    pub revocation: String,
}

/// The key ids before and after [`RealProvider::rotate_keys`].
#[derive(Clone, Debug)]
pub struct RotatedKeys {
    /// The key that signs from now on.
    pub kid: String,
    /// The key that signed before; it stays published.
    pub previous: String,
}

/// A running `oidc-provider`; the process is killed when this is dropped.
pub struct RealProvider {
    issuer: String,
    endpoints: Endpoints,
    http: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
    _stdin: Option<ChildStdin>,
    _child: Child,
}

impl std::fmt::Debug for RealProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The directory of the Node project.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

fn skip_or_panic(reason: &str) -> Option<RealProvider> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "the real provider tests must run in CI: {reason}; run npm ci in tests/oidc-provider"
        );
    }
    eprintln!("{SKIP_MESSAGE} ({reason})");
    None
}

impl RealProvider {
    /// Starts the provider with the built-in registrations; `None` (test skipped) when it is not
    /// installed and `CI` is unset.
    pub async fn start() -> Option<Self> {
        Self::start_with(ProviderOptions::default()).await
    }

    /// Starts the provider with extra redirect and post-logout redirect URIs.
    pub async fn start_with(options: ProviderOptions) -> Option<Self> {
        let dir = provider_dir();
        if !dir.join("node_modules").join("oidc-provider").is_dir() {
            return skip_or_panic("tests/oidc-provider/node_modules/oidc-provider is missing");
        }
        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .arg("0")
            .current_dir(&dir)
            .env("EXIT_WITH_STDIN", "1")
            .env("EXTRA_REDIRECT_URIS", options.redirect_uris.join(","))
            .env(
                "EXTRA_POST_LOGOUT_REDIRECT_URIS",
                options.post_logout_redirect_uris.join(","),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return skip_or_panic("`node` is not on PATH");
            }
            Err(e) => panic!("cannot start node server.mjs in {}: {e}", dir.display()),
        };
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, logs.clone(), "stderr");
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return Some(issuer.trim().to_owned());
                }
                push_log(&logs, "stdout", &line);
            }
            None
        })
        .await;
        let issuer = match ready {
            Ok(Some(issuer)) => issuer,
            Ok(None) => panic!(
                "oidc-provider exited before it was ready:\n{}",
                joined(&logs)
            ),
            Err(_) => panic!(
                "oidc-provider was not ready within {START_TIMEOUT:?}:\n{}",
                joined(&logs)
            ),
        };
        // Keep reading stdout so the child never blocks on a full pipe.
        let rest = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                push_log(&rest, "stdout", &line);
            }
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("the provider serves discovery")
            .json()
            .await
            .expect("discovery is JSON");
        let endpoint = |name: &str| {
            discovery[name]
                .as_str()
                .unwrap_or_else(|| panic!("discovery has no {name}: {discovery}"))
                .to_owned()
        };
        let endpoints = Endpoints {
            authorization: endpoint("authorization_endpoint"),
            token: endpoint("token_endpoint"),
            device_authorization: endpoint("device_authorization_endpoint"),
            end_session: endpoint("end_session_endpoint"),
            jwks: endpoint("jwks_uri"),
            userinfo: endpoint("userinfo_endpoint"),
            revocation: endpoint("revocation_endpoint"),
        };
        Some(Self {
            issuer,
            endpoints,
            http,
            logs,
            _stdin: child.stdin.take(),
            _child: child,
        })
    }

    /// `http://127.0.0.1:<port>`, exactly as the provider puts it in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// What the provider wrote to stdout and stderr so far (its warnings and errors).
    pub fn logs(&self) -> String {
        joined(&self.logs)
    }

    /// A plain HTTP client (no redirects followed, no cookies).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The provider's current JWKS.
    pub async fn jwks(&self) -> Value {
        self.http
            .get(&self.endpoints.jwks)
            .send()
            .await
            .expect("jwks request")
            .json()
            .await
            .expect("jwks is JSON")
    }

    /// Makes the provider sign with a new RS256 key from now on; the previous key stays
    /// published. The new `kid` appears in `jwks_uri` at once.
    pub async fn rotate_keys(&self) -> RotatedKeys {
        let response = self
            .http
            .post(format!("{}/__test/rotate", self.issuer))
            .send()
            .await
            .expect("rotate request");
        assert_eq!(response.status().as_u16(), 200, "rotate failed");
        let body: Value = response.json().await.expect("rotate answer is JSON");
        RotatedKeys {
            kid: body["kid"].as_str().expect("new kid").to_owned(),
            previous: body["previous"].as_str().expect("previous kid").to_owned(),
        }
    }

    /// An authorization request URL: response type `code`, S256 PKCE, a nonce, and
    /// `prompt=consent` (oidc-provider drops `offline_access` without it).
    pub fn authorize_url(
        &self,
        client: Client,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        pkce: &Pkce,
    ) -> String {
        let mut url = Url::parse(&self.endpoints.authorization).expect("authorization endpoint");
        url.query_pairs_mut()
            .append_pair("client_id", client.id())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("nonce", &random_token(16))
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "consent");
        url.into()
    }

    /// POSTs `form` to the token endpoint as `client` (basic auth for the confidential client,
    /// `client_id` in the form for the public one). Returns the status and the JSON body.
    pub async fn token(&self, client: Client, form: &[(&str, &str)]) -> (u16, Value) {
        self.post_as(client, &self.endpoints.token, form).await
    }

    /// Starts a device authorization for `client`; the JSON answer (`device_code`, `user_code`,
    /// `verification_uri`, ...).
    pub async fn device_authorization(&self, client: Client, scope: &str) -> Value {
        let (status, body) = self
            .post_as(
                client,
                &self.endpoints.device_authorization,
                &[("scope", scope)],
            )
            .await;
        assert_eq!(status, 200, "device authorization failed: {body}");
        body
    }

    /// Polls the token endpoint with `device_code` until it answers something other than
    /// `authorization_pending` / `slow_down` (polling faster than the provider's interval is
    /// fine here: oidc-provider answers `slow_down` and the loop waits).
    pub async fn poll_device(&self, client: Client, device_code: &str) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut wait = Duration::from_millis(200);
        loop {
            let (status, body) = self
                .token(
                    client,
                    &[
                        ("grant_type", DEVICE_CODE_GRANT),
                        ("device_code", device_code),
                    ],
                )
                .await;
            match body["error"].as_str() {
                Some("authorization_pending") => {}
                Some("slow_down") => wait += Duration::from_secs(1),
                _ => return (status, body),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "device polling did not finish: {body}"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn post_as(&self, client: Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(url);
        match client.secret() {
            Some(secret) => request = request.basic_auth(client.id(), Some(secret)),
            None => fields.push(("client_id", client.id())),
        }
        let response = request
            .form(&fields)
            .send()
            .await
            .expect("provider answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// A fresh headless browser (its own cookies) signing in as [`USERNAME`].
    pub fn browser(&self) -> Browser {
        Browser {
            http: self.http.clone(),
            origin: Url::parse(&self.issuer).expect("issuer").origin(),
            device_url: self
                .endpoints
                .device_authorization
                .replace("/device/auth", "/device"),
            username: USERNAME.to_owned(),
            jar: Mutex::new(Jar::default()),
            actions: Mutex::new(Vec::new()),
        }
    }

    /// Opens `authorize_url` in a fresh browser, signs in as alice and consents; returns the
    /// redirect to the client's `redirect_uri` without fetching it. See [`Browser::login`].
    pub async fn login(&self, authorize_url: &str) -> LoginResult {
        self.browser().login(authorize_url).await
    }

    /// Enters `user_code` on the provider's device pages, confirms, signs in and consents.
    pub async fn approve_device(&self, user_code: &str) {
        self.browser().approve_device(user_code).await;
    }

    /// Enters `user_code` on the provider's device pages and aborts: the device then gets
    /// `access_denied`.
    pub async fn deny_device(&self, user_code: &str) {
        self.browser().deny_device(user_code).await;
    }
}

fn push_log(logs: &Mutex<Vec<String>>, stream: &str, line: &str) {
    if let Ok(mut logs) = logs.lock() {
        logs.push(format!("[{stream}] {line}"));
    }
}

fn joined(logs: &Mutex<Vec<String>>) -> String {
    logs.lock().map(|l| l.join("\n")).unwrap_or_default()
}

fn drain(
    stream: impl AsyncRead + Unpin + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    name: &'static str,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            push_log(&logs, name, &line);
        }
    });
}

/// A PKCE pair: a random verifier and its S256 challenge.
#[derive(Clone, Debug)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        Self::from_verifier(random_token(32))
    }

    pub fn from_verifier(verifier: String) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("random bytes");
    URL_SAFE_NO_PAD.encode(buf)
}

/// The payload of a compact JWS, decoded without any verification (for assertions only).
pub fn jwt_payload(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The protected header of a compact JWS, decoded without any verification.
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("not a compact JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
    serde_json::from_slice(&bytes).expect("JSON JWT part")
}

/// Where a browser journey through the provider ended.
#[derive(Clone, Debug)]
pub enum LoginResult {
    /// The provider redirected away from itself (to the client): the Location, not fetched. It
    /// carries `code`, `state` and `iss`, or `error` and `error_description`.
    Redirect(Url),
    /// The provider stopped at a page of its own, typically its error page.
    Page { status: u16, url: Url, body: String },
}

impl LoginResult {
    /// The redirect URL; panics (showing the page) when the provider stopped on a page.
    pub fn location(&self) -> &Url {
        match self {
            LoginResult::Redirect(url) => url,
            LoginResult::Page { status, url, body } => {
                panic!("the provider did not redirect to the client; {status} at {url}:\n{body}")
            }
        }
    }

    /// A query parameter of the redirect.
    pub fn param(&self, name: &str) -> Option<String> {
        self.location()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The authorization code; panics when there is none.
    pub fn code(&self) -> String {
        self.param("code").unwrap_or_else(|| {
            panic!(
                "no code in the redirect (error: {:?}): {}",
                self.param("error"),
                self.location()
            )
        })
    }

    pub fn state(&self) -> Option<String> {
        self.param("state")
    }

    pub fn error(&self) -> Option<String> {
        self.param("error")
    }
}

/// A cookie-keeping HTTP user agent that walks the provider's pages like a person would.
pub struct Browser {
    http: reqwest::Client,
    origin: url::Origin,
    device_url: String,
    username: String,
    jar: Mutex<Jar>,
    actions: Mutex<Vec<&'static str>>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the browser does on a device confirmation page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceChoice {
    Confirm,
    Abort,
}

impl Browser {
    /// Signs in as `username` instead of alice (the provider then knows only `sub`).
    pub fn username(mut self, username: &str) -> Self {
        username.clone_into(&mut self.username);
        self
    }

    /// GETs `authorize_url`, follows the provider's redirects keeping cookies, submits the login
    /// form (any password is accepted) and the consent form, and stops at the first redirect that
    /// leaves the provider, returning it unfetched.
    pub async fn login(&self, authorize_url: &str) -> LoginResult {
        let url = Url::parse(authorize_url).expect("authorize URL");
        self.walk(Step::Get(url), DeviceChoice::Confirm).await
    }

    /// Drives `/device?user_code=...`: confirms the code, signs in, consents. Panics unless the
    /// provider ends on its success page.
    pub async fn approve_device(&self, user_code: &str) {
        match self.device(user_code, DeviceChoice::Confirm).await {
            LoginResult::Page {
                status: 200, body, ..
            } if body.contains("Sign-in Success") => {}
            other => panic!("device approval did not succeed: {other:?}"),
        }
    }

    /// Drives `/device?user_code=...` and presses Abort on the confirmation page.
    pub async fn deny_device(&self, user_code: &str) {
        match self.device(user_code, DeviceChoice::Abort).await {
            LoginResult::Page { body, .. } if body.contains("interrupted") => {}
            other => panic!("device denial did not end on the aborted page: {other:?}"),
        }
    }

    async fn device(&self, user_code: &str, choice: DeviceChoice) -> LoginResult {
        let mut url = Url::parse(&self.device_url).expect("device URL");
        url.query_pairs_mut().append_pair("user_code", user_code);
        self.walk(Step::Get(url), choice).await
    }

    /// Opens an end-session URL and confirms the logout form if one is shown; returns the
    /// redirect to the `post_logout_redirect_uri` (or the provider's page when there is none).
    pub async fn logout(&self, end_session_url: &str) -> LoginResult {
        let url = Url::parse(end_session_url).expect("end session URL");
        self.walk(Step::Get(url), DeviceChoice::Confirm).await
    }

    /// The forms this browser submitted so far, in order: `"login"`, `"consent"`,
    /// `"device confirm"`, `"device abort"`, `"logout confirm"`, `"auto-submit"`.
    pub fn actions(&self) -> Vec<&'static str> {
        self.actions.lock().map(|a| a.clone()).unwrap_or_default()
    }

    async fn walk(&self, first: Step, choice: DeviceChoice) -> LoginResult {
        let mut step = first;
        for _ in 0..MAX_BROWSER_STEPS {
            let url = step.url().clone();
            let response = self.send(&step).await;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("{status} without Location at {url}"));
                let next = url.join(location).expect("Location is a URL");
                if next.origin() != self.origin {
                    return LoginResult::Redirect(next);
                }
                step = Step::Get(next);
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            match self.next_step(&url, &body, choice) {
                Some((action, next)) => {
                    if let Ok(mut actions) = self.actions.lock() {
                        actions.push(action);
                    }
                    step = next;
                }
                None => return LoginResult::Page { status, url, body },
            }
        }
        panic!("more than {MAX_BROWSER_STEPS} steps through the provider's pages")
    }

    /// Decides what a person would submit on this page; `None` when there is nothing to do.
    fn next_step(
        &self,
        url: &Url,
        body: &str,
        choice: DeviceChoice,
    ) -> Option<(&'static str, Step)> {
        let forms = parse_forms(body);
        let form = forms.first()?;
        let action = url.join(&form.action).ok()?;
        let prompt = form.inputs.get("prompt").and_then(|v| v.as_deref());
        let mut fields: Vec<(String, String)> = form
            .inputs
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        let what = match (prompt, form.id.as_deref()) {
            (Some("login"), _) => {
                fields.retain(|(k, _)| k == "prompt");
                fields.push(("login".into(), self.username.clone()));
                fields.push(("password".into(), "any password".into()));
                "login"
            }
            (Some("consent"), _) => "consent",
            (_, Some("op.deviceConfirmForm")) if choice == DeviceChoice::Abort => {
                fields.retain(|(k, _)| k != "confirm");
                fields.push(("abort".into(), "yes".into()));
                "device abort"
            }
            (_, Some("op.deviceConfirmForm")) => "device confirm",
            (_, Some("op.logoutForm")) => {
                fields.push(("logout".into(), "yes".into()));
                "logout confirm"
            }
            // The device code entry page: only reached without `user_code` in the URL.
            (_, Some("op.deviceInputForm")) => return None,
            // An auto-submitting form_post page (device code and logout without a session).
            _ if form.method == "post" && form.inputs.values().all(Option::is_some) => {
                "auto-submit"
            }
            _ => return None,
        };
        Some((what, Step::Post(action, fields)))
    }

    async fn send(&self, step: &Step) -> reqwest::Response {
        let url = step.url();
        let mut request = match step {
            Step::Get(url) => self.http.get(url.clone()),
            Step::Post(url, fields) => self.http.post(url.clone()).form(fields),
        };
        let cookies = self.jar.lock().expect("jar").header_for(url.path());
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("provider request to {url} failed: {e}"));
        let mut jar = self.jar.lock().expect("jar");
        for value in response.headers().get_all(SET_COOKIE) {
            if let Ok(value) = value.to_str() {
                jar.store(value, url.path());
            }
        }
        response
    }
}

#[derive(Debug)]
enum Step {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

impl Step {
    fn url(&self) -> &Url {
        match self {
            Step::Get(url) | Step::Post(url, _) => url,
        }
    }
}

/// Cookies of the one provider origin, keyed by (path, name); domains are not needed.
#[derive(Default, Debug)]
struct Jar {
    cookies: BTreeMap<(String, String), String>,
}

impl Jar {
    fn store(&mut self, set_cookie: &str, request_path: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let mut path = default_path(request_path);
        let mut expired = false;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.trim().starts_with('/') => val.trim().clone_into(&mut path),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => expired |= val.contains("1970"),
                _ => {}
            }
        }
        let key = (path, name.trim().to_owned());
        if expired || value.trim().is_empty() {
            self.cookies.remove(&key);
        } else {
            self.cookies.insert(key, value.trim().to_owned());
        }
    }

    fn header_for(&self, request_path: &str) -> String {
        self.cookies
            .iter()
            .filter(|((path, _), _)| path_matches(path, request_path))
            .map(|((_, name), value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// RFC 6265 section 5.1.4.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/')))
}

/// One `<form>` of a page: its action, method, id and inputs (`None` for inputs without a value
/// attribute, such as the login field).
#[derive(Debug)]
struct Form {
    action: String,
    method: String,
    id: Option<String>,
    inputs: BTreeMap<String, Option<String>>,
}

/// Enough HTML parsing for oidc-provider's own pages: forms and their inputs.
fn parse_forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<form").map(|i| i + at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else {
            break;
        };
        let attributes = parse_attributes(&html[start + 5..tag_end]);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |i| i + tag_end);
        let mut inputs = BTreeMap::new();
        let inner = &html[tag_end..end];
        let inner_lower = &lower[tag_end..end];
        let mut i = 0;
        while let Some(input) = inner_lower[i..].find("<input").map(|k| k + i) {
            let close = inner_lower[input..]
                .find('>')
                .map_or(inner.len(), |k| k + input);
            let attrs = parse_attributes(&inner[input + 6..close]);
            if let Some(name) = attrs.get("name").cloned().flatten() {
                inputs.insert(name, attrs.get("value").cloned().flatten());
            }
            i = close;
        }
        forms.push(Form {
            action: attributes
                .get("action")
                .cloned()
                .flatten()
                .unwrap_or_default(),
            method: attributes
                .get("method")
                .cloned()
                .flatten()
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            id: attributes.get("id").cloned().flatten(),
            inputs,
        });
        at = end;
    }
    forms
}

/// `name="value"`, `name='value'`, `name=value` and bare `name` attributes, entities decoded.
fn parse_attributes(tag: &str) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let chars: Vec<char> = tag.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        if start == i {
            i += 1;
            continue;
        }
        let name: String = chars[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let value: String = if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                let begin = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                let v = chars[begin..i].iter().collect();
                i += 1;
                v
            } else {
                let begin = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                chars[begin..i].iter().collect()
            };
            out.insert(name, Some(decode_entities(&value)));
        } else {
            out.insert(name, None);
        }
    }
    out
}

fn decode_entities(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_inputs_are_found() {
        let html = r#"<form id="op.deviceConfirmForm" method="post" action="/device">
<input type="hidden" name="xsrf" value="a&amp;b"/>
<input type="hidden" name="user_code" value="BCDF-GHJK"/>
<input required type="text" name="login" placeholder="x" autofocus="on">
</form>"#;
        let forms = parse_forms(html);
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].id.as_deref(), Some("op.deviceConfirmForm"));
        assert_eq!(forms[0].action, "/device");
        assert_eq!(forms[0].inputs["xsrf"].as_deref(), Some("a&b"));
        assert_eq!(forms[0].inputs["login"], None);
    }

    #[test]
    fn cookie_paths_match() {
        let mut jar = Jar::default();
        jar.store("_interaction=abc; path=/interaction/x; httponly", "/auth");
        jar.store(
            "_session=s; path=/; expires=Sun, 01 Jan 2040 00:00:00 GMT",
            "/auth",
        );
        assert_eq!(
            jar.header_for("/interaction/x"),
            "_session=s; _interaction=abc"
        );
        assert_eq!(jar.header_for("/interaction/xy"), "_session=s");
        jar.store(
            "_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "/",
        );
        assert_eq!(jar.header_for("/"), "");
    }
}
