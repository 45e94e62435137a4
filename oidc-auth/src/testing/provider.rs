//! [`MockProvider`]: the handle tests hold, and the state it shares with the HTTP server.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::fault::{Endpoint, Fault};
use super::keys::{KeyRing, SigningAlg, SigningKey};
use super::op::OpState;
use super::server;
use super::token::{self, TokenBuilder};

/// An OpenID provider running in-process on `127.0.0.1:<random port>`, for tests.
///
/// It serves discovery (`/.well-known/openid-configuration`), the JWKS (`/jwks`), and the
/// authorization, token, device authorization, userinfo and end-session endpoints of a provider
/// that logs its user in without a prompt (see [`set_user`](Self::set_user),
/// [`set_client`](Self::set_client) and the other switches). It mints signed tokens with
/// [`token`](Self::token), rotates keys, injects [`Fault`]s per [`Endpoint`] and counts the
/// requests it receives.
///
/// Cloning is cheap and every clone controls the same server. The server runs on a spawned tokio
/// task and stops when the last clone is dropped, or on [`shutdown`](Self::shutdown). It needs a
/// running tokio runtime; with a current-thread runtime (the `#[tokio::test]` default) it only
/// answers while the test is awaiting, so never block that thread on a request to it.
///
/// ```
/// use oidc_auth::testing::MockProvider;
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockProvider::start().await?;
/// let token = provider.token().audience("my-api").scope("read").sign();
/// assert_eq!(token.split('.').count(), 3);
/// assert!(provider.discovery_url().starts_with(&provider.issuer()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The server task only holds `Shared`, so this is what ends it.
        self.shutdown.send_replace(true);
    }
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("issuer", &self.inner.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// Starts a provider with one RS256 key.
    ///
    /// # Errors
    /// When the loopback listener cannot be bound.
    ///
    /// ```
    /// use oidc_auth::testing::{MockProvider, SigningAlg};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let provider = MockProvider::start().await?;
    /// assert!(provider.issuer().starts_with("http://127.0.0.1:"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> std::io::Result<MockProvider> {
        Self::start_with_alg(SigningAlg::RS256).await
    }

    /// Starts a provider whose first (current, published) key uses `alg`.
    ///
    /// # Errors
    /// When the loopback listener cannot be bound.
    ///
    /// ```
    /// use oidc_auth::testing::{MockProvider, SigningAlg};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let provider = MockProvider::start_with_alg(SigningAlg::EdDSA).await?;
    /// assert_eq!(provider.current_kid().len(), 16);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_with_alg(alg: SigningAlg) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            keys: Mutex::new(KeyRing::new(SigningKey::generate(alg))),
            discovery_issuer: Mutex::new(None),
            faults: Mutex::new(std::array::from_fn(|_| Fault::None)),
            hits: [const { AtomicUsize::new(0) }; Endpoint::COUNT],
            op: Mutex::new(OpState::default()),
            shutdown: shutdown_rx,
        });
        let stopped = server::spawn(listener, Arc::clone(&shared));
        tracing::debug!(issuer = %shared.issuer, "mock OpenID provider started");
        Ok(MockProvider {
            inner: Arc::new(Inner {
                shared,
                addr,
                shutdown,
                stopped,
            }),
        })
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The issuer, `http://127.0.0.1:<port>` without a trailing slash; also the `iss` of minted
    /// tokens.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let issuer = provider.issuer();
    /// assert!(!issuer.ends_with('/'));
    /// # }
    /// ```
    #[must_use]
    pub fn issuer(&self) -> String {
        self.shared().issuer.clone()
    }

    /// The discovery document URL: the issuer followed by `/.well-known/openid-configuration`.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// assert!(provider.discovery_url().ends_with("/.well-known/openid-configuration"));
    /// # }
    /// ```
    #[must_use]
    pub fn discovery_url(&self) -> String {
        self.shared().url(Endpoint::Discovery)
    }

    /// The JWKS URL: the issuer followed by `/jwks`.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// assert_eq!(provider.jwks_uri(), format!("{}/jwks", provider.issuer()));
    /// # }
    /// ```
    #[must_use]
    pub fn jwks_uri(&self) -> String {
        self.shared().url(Endpoint::Jwks)
    }

    /// The socket address the server listens on.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// assert!(provider.addr().ip().is_loopback());
    /// # }
    /// ```
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Starts a token signed with the current key; see [`TokenBuilder`] for the defaults.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let expired = provider.token().sub("bob").expires_in(-60).sign();
    /// # }
    /// ```
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(self.shared()))
    }

    /// Signs arbitrary header and payload bytes (they need not be JSON) with the key `kid`, using
    /// that key's algorithm, and returns `b64url(header).b64url(payload).b64url(signature)`.
    /// An unknown `kid` signs with the current key.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let kid = provider.current_kid();
    /// let token = provider.sign_raw(br#"{"alg":"RS256""#, b"not json", &kid);
    /// # }
    /// ```
    #[must_use]
    pub fn sign_raw(&self, header: &[u8], payload: &[u8], kid: &str) -> String {
        let key = {
            let ring = self.shared().keys();
            ring.get(kid).unwrap_or_else(|| ring.current())
        };
        token::compact(&key, header, payload)
    }

    /// Generates a key, publishes it and makes it the current signing key; returns its kid.
    /// Earlier keys stay published until [`retire_key`](Self::retire_key).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let kid = provider.rotate_key(SigningAlg::ES256);
    /// assert_eq!(provider.current_kid(), kid);
    /// # }
    /// ```
    pub fn rotate_key(&self, alg: SigningAlg) -> String {
        let key = SigningKey::generate(alg);
        self.shared().keys().insert(key, true)
    }

    /// Generates a key and publishes it in place of the current key, under the same kid, and
    /// makes it current; returns that kid. This is a provider that reuses a kid across a
    /// rotation: tokens signed by the old key no longer verify, and the old key cannot sign
    /// any more.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let kid = provider.current_kid();
    /// assert_eq!(provider.replace_key_keeping_kid(SigningAlg::RS256), kid);
    /// # }
    /// ```
    pub fn replace_key_keeping_kid(&self, alg: SigningAlg) -> String {
        self.shared().keys().replace_current(alg)
    }

    /// Generates a key and publishes it without making it current; returns its kid. Sign with it
    /// through [`TokenBuilder::kid`].
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let kid = provider.add_key(SigningAlg::PS256);
    /// let token = provider.token().kid(&kid).sign();
    /// # }
    /// ```
    pub fn add_key(&self, alg: SigningAlg) -> String {
        let key = SigningKey::generate(alg);
        self.shared().keys().insert(key, false)
    }

    /// Removes every JWKS entry with this kid, raw ones included. The key can still sign through
    /// [`TokenBuilder::kid`]. Retiring the current key leaves it current: tokens are still signed
    /// with it but no longer verifiable; call [`rotate_key`](Self::rotate_key) first if that is
    /// not what the test wants. An unknown kid is ignored.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let old = provider.current_kid();
    /// provider.rotate_key(SigningAlg::RS256);
    /// provider.retire_key(&old);
    /// let orphan = provider.token().kid(&old).sign();
    /// # }
    /// ```
    pub fn retire_key(&self, kid: &str) {
        self.shared().keys().retire(kid);
    }

    /// The kid of the key new tokens are signed with.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let kid = provider.current_kid();
    /// # }
    /// ```
    #[must_use]
    pub fn current_kid(&self) -> String {
        self.shared().keys().current().kid().to_owned()
    }

    /// Appends `jwk` verbatim to the JWKS `keys` array, after the generated keys; for tests of
    /// unparseable, weak or `use: enc` keys.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.publish_raw_jwk(serde_json::json!({"kty": "RSA", "kid": "broken", "n": "!!"}));
    /// # }
    /// ```
    pub fn publish_raw_jwk(&self, jwk: Value) {
        self.shared().keys().push_raw(jwk);
    }

    /// Makes discovery advertise a different `issuer` (`None` restores the real one). Token `iss`
    /// and the endpoint URLs in discovery are unaffected.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_discovery_issuer(Some("https://evil.example".to_owned()));
    /// # }
    /// ```
    pub fn set_discovery_issuer(&self, issuer: Option<String>) {
        *lock(&self.shared().discovery_issuer) = issuer;
    }

    /// Makes `endpoint` misbehave as `fault` describes, until changed again.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::{Endpoint, Fault};
    ///
    /// provider.set_fault(Endpoint::Jwks, Fault::Garbage);
    /// provider.set_fault(Endpoint::Jwks, Fault::None);
    /// # }
    /// ```
    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        lock(&self.shared().faults)[endpoint.index()] = fault;
    }

    /// Sets the same fault on every endpoint; `Fault::Down` here takes the whole server down.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::Fault;
    ///
    /// provider.set_fault_all(Fault::Down);
    /// # }
    /// ```
    pub fn set_fault_all(&self, fault: Fault) {
        lock(&self.shared().faults).fill(fault);
    }

    /// How many requests `endpoint` received since start or [`reset_hits`](Self::reset_hits),
    /// including those answered with a fault. Requests dropped by [`Fault::Down`] are not
    /// counted.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::Endpoint;
    ///
    /// assert_eq!(provider.hits(Endpoint::Jwks), 0, "validation must not have fetched the JWKS");
    /// # }
    /// ```
    #[must_use]
    pub fn hits(&self, endpoint: Endpoint) -> usize {
        self.shared().hits[endpoint.index()].load(Ordering::SeqCst)
    }

    /// Sets every hit counter back to zero.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.reset_hits();
    /// # }
    /// ```
    pub fn reset_hits(&self) {
        for hits in &self.shared().hits {
            hits.store(0, Ordering::SeqCst);
        }
    }

    /// Stops the server and waits until it has stopped: the port is closed and requests held by
    /// [`Fault::Slow`] or [`Fault::Hang`] are released with `503`. Tokens can still be minted.
    /// Dropping the last clone does the same without waiting.
    ///
    /// ```
    /// use oidc_auth::testing::MockProvider;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let provider = MockProvider::start().await?;
    /// provider.shutdown().await;
    /// assert!(tokio::net::TcpStream::connect(provider.addr()).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let mut stopped = self.inner.stopped.clone();
        // An error means the server task is gone, which is just as stopped.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

/// State shared by the [`MockProvider`] handles, the token builders and the server task.
pub(super) struct Shared {
    issuer: String,
    keys: Mutex<KeyRing>,
    discovery_issuer: Mutex<Option<String>>,
    faults: Mutex<[Fault; Endpoint::COUNT]>,
    hits: [AtomicUsize; Endpoint::COUNT],
    op: Mutex<OpState>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(super) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(super) fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.issuer, endpoint.path())
    }

    pub(super) fn keys(&self) -> MutexGuard<'_, KeyRing> {
        lock(&self.keys)
    }

    /// The OpenID flow state. Never hold the guard across an await, while signing, or while
    /// calling a test's tweak.
    pub(super) fn op(&self) -> MutexGuard<'_, OpState> {
        lock(&self.op)
    }

    pub(super) fn fault(&self, endpoint: Endpoint) -> Fault {
        lock(&self.faults)[endpoint.index()].clone()
    }

    /// Whether every endpoint is [`Fault::Down`], i.e. the whole server should look unreachable.
    pub(super) fn all_down(&self) -> bool {
        lock(&self.faults).iter().all(|fault| *fault == Fault::Down)
    }

    pub(super) fn count_hit(&self, endpoint: Endpoint) {
        self.hits[endpoint.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// Resolves once the provider is shutting down.
    pub(super) async fn shutdown_requested(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means every handle is gone, which is a shutdown too.
        let _ = shutdown.wait_for(|stop| *stop).await;
    }

    pub(super) fn discovery_document(&self) -> Value {
        let issuer = &self.issuer;
        let advertised = lock(&self.discovery_issuer)
            .clone()
            .unwrap_or_else(|| issuer.clone());
        let (device_enabled, revocation_enabled, iss_supported, tweak) = {
            let op = self.op();
            (
                op.device_enabled,
                op.revocation_enabled,
                op.iss_in_authorization_response,
                op.discovery_tweak.clone(),
            )
        };
        let mut doc = json!({
            "issuer": advertised,
            "authorization_endpoint": self.url(Endpoint::Authorize),
            "token_endpoint": self.url(Endpoint::Token),
            "userinfo_endpoint": self.url(Endpoint::Userinfo),
            "end_session_endpoint": self.url(Endpoint::EndSession),
            "jwks_uri": self.url(Endpoint::Jwks),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.keys().published_algs(),
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "authorization_response_iss_parameter_supported": iss_supported,
        });
        if let Some(doc) = doc.as_object_mut() {
            if device_enabled {
                doc.insert(
                    "device_authorization_endpoint".into(),
                    Value::from(self.url(Endpoint::Device)),
                );
            }
            if revocation_enabled {
                doc.insert(
                    "revocation_endpoint".into(),
                    Value::from(self.url(Endpoint::Revocation)),
                );
            }
            if let Some(tweak) = tweak {
                tweak(doc);
            }
        }
        doc
    }

    pub(super) fn jwks_document(&self) -> Value {
        self.keys().jwks()
    }
}

/// A panic while holding one of these locks cannot leave the plain data behind them invalid, so
/// poisoning is ignored rather than turned into a second panic.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
