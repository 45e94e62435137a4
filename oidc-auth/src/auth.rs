//! [`OidcAuth`]: the handle every route shares. Framework-free: the axum and actix-web modules
//! only translate requests into calls on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde_json::Value;

use crate::broker::{Broker, Peers};
use crate::clock::{Clock, SystemClock};
use crate::config::OidcConfig;
use crate::error::{AuthError, ErrorKind, ErrorRenderer, ErrorResponse};
use crate::flow::seal::Sealer;
use crate::policy::Policy;
use crate::provider::{Provider, Withdrawals};
use crate::store::Store;
use crate::token::{self, Expectations, IdToken, TokenCache};

/// The authentication handle: configuration, provider caches and the validated-token cache.
///
/// Cheap to clone; every clone shares the caches. Creating it makes no network call, so a server
/// starts while its identity provider is down; validation answers 503 until keys can be fetched.
///
/// ```
/// use oidc_auth::{OidcAuth, OidcConfig};
/// let config = OidcConfig::builder()
///     .discovery_url("https://idp.example/.well-known/openid-configuration")
///     .client_id("app")
///     .audience("app")
///     .build()?;
/// let auth = OidcAuth::new(config);
/// assert!(!auth.is_ready());
/// # Ok::<(), oidc_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OidcAuth(Arc<Inner>);

struct Inner {
    config: OidcConfig,
    provider: Arc<Provider>,
    cache: Option<TokenCache>,
    clock: Arc<dyn Clock>,
    renderer: Option<ErrorRenderer>,
    /// Whether the renderer's invalid headers have been logged already.
    renderer_warned: AtomicBool,
    /// When each [`OutageLog`] was last written as a warning (unix seconds, or `i64::MIN`): at
    /// most one every [`OUTAGE_LOG_INTERVAL_SECS`], the others at DEBUG, so an outage under
    /// load does not write a warning per request.
    outage_warned_at: [AtomicI64; 3],
    leeway: i64,
    sealer: Sealer,
    broker: Option<Arc<Broker>>,
    peers: Option<Arc<Peers>>,
    /// Refreshes of provider refresh tokens under way (without broker mode), by the SHA-256 of
    /// the token: one provider call for all the requests presenting the same token meanwhile.
    refreshes: crate::flow::RefreshFlights,
    /// Places for provider calls detached from their requests.
    detached_calls: crate::flow::DetachedCalls,
}

impl std::fmt::Debug for OidcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcAuth")
            .field("provider", &self.0.provider)
            .field("cache", &self.0.cache)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OidcAuth`] with a custom clock or error rendering.
///
/// ```
/// use oidc_auth::{ManualClock, OidcAuth, OidcConfig};
/// # let config = OidcConfig::builder().discovery_url("https://idp.example/.well-known/openid-configuration").client_id("app").build()?;
/// let auth = OidcAuth::builder(config).clock(ManualClock::new(1_700_000_000)).build();
/// # Ok::<(), oidc_auth::ConfigError>(())
/// ```
#[must_use]
pub struct OidcAuthBuilder {
    config: OidcConfig,
    clock: Arc<dyn Clock>,
    renderer: Option<ErrorRenderer>,
    store: Option<Arc<dyn Store>>,
}

impl OidcAuthBuilder {
    /// Uses `store` for broker mode instead of connecting to the configured store URL: for a
    /// store built on an existing connection pool, or a custom [`Store`]. Its schema must be
    /// migrated ([`Store::migrate`]) before use.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses `clock` for token times and cache expiry (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Renders every authentication error with `renderer` instead of the default JSON body.
    pub fn error_renderer(mut self, renderer: ErrorRenderer) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Builds the handle. Makes no network call.
    pub fn build(self) -> OidcAuth {
        let config = self.config;
        if config.audience.is_none() {
            tracing::warn!(
                "no audience is configured: tokens issued to any client of the provider are accepted"
            );
        }
        let withdrawals = Withdrawals::default();
        let provider = Arc::new(Provider::new(
            &config,
            self.clock.clone(),
            withdrawals.clone(),
        ));
        let cache = TokenCache::new(
            config.token_cache_capacity,
            crate::clock::secs(config.token_cache_ttl),
            withdrawals.clone(),
        );
        let state_key = config
            .state_key
            .as_ref()
            .and_then(|k| crate::config::decode_key(k.expose()));
        if state_key.is_none() {
            // At INFO, where a deployment looks: behind a load balancer, a login begun on one
            // instance then fails on another with nothing else to say why.
            tracing::info!(
                "no state key configured: login state is sealed with a per-process key, so a login \
                 begun on one instance cannot complete on another; set OIDC_STATE_KEY when \
                 running several"
            );
        }
        if self.store.is_some() && !config.broker_mode {
            tracing::warn!("a store was given but broker mode is off: the store is not used");
        }
        let broker = config
            .broker_mode
            .then(|| Arc::new(Broker::new(&config, self.store, self.clock.clone())));
        let peers = (!config.trusted_issuers.is_empty())
            .then(|| Arc::new(Peers::new(&config, self.clock.clone(), withdrawals)));
        OidcAuth(Arc::new(Inner {
            broker,
            peers,
            leeway: crate::clock::secs(config.leeway),
            config,
            provider,
            cache,
            clock: self.clock,
            renderer: self.renderer,
            renderer_warned: AtomicBool::new(false),
            outage_warned_at: std::array::from_fn(|_| AtomicI64::new(i64::MIN)),
            refreshes: crate::flow::RefreshFlights::default(),
            detached_calls: crate::flow::DetachedCalls::default(),
            sealer: Sealer::new(state_key),
        }))
    }
}

impl OidcAuth {
    /// A handle with the system clock and default error rendering.
    pub fn new(config: OidcConfig) -> Self {
        Self::builder(config).build()
    }

    /// A builder, for a custom clock or error rendering.
    pub fn builder(config: OidcConfig) -> OidcAuthBuilder {
        OidcAuthBuilder {
            config,
            clock: Arc::new(SystemClock),
            renderer: None,
            store: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.0.config
    }

    pub(crate) fn provider(&self) -> &Arc<Provider> {
        &self.0.provider
    }

    pub(crate) fn refreshes(&self) -> &crate::flow::RefreshFlights {
        &self.0.refreshes
    }

    pub(crate) fn detached_calls(&self) -> &crate::flow::DetachedCalls {
        &self.0.detached_calls
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.0.sealer
    }

    pub(crate) fn broker(&self) -> Option<&Arc<Broker>> {
        self.0.broker.as_ref()
    }

    /// The current time of the configured clock, Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.0.clock.now()
    }

    /// Fetches the discovery document and the JWKS now, so the first request does not wait.
    /// Failure is not fatal: validation retries (with backoff) on demand.
    ///
    /// In broker mode this also connects the store and creates the first signing key.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        if let Some(broker) = &self.0.broker {
            broker.warm_up(self.now()).await?;
        }
        self.0.provider.warm_up().await.map(|_| ())
    }

    /// Readiness: whether signing keys are loaded and fresh enough to validate tokens.
    pub fn is_ready(&self) -> bool {
        self.0.provider.is_ready()
    }

    /// Validates a compact bearer token: structure, algorithm, registered claims and signature.
    /// Scopes and claim constraints are not checked here; see [`authorize`](Self::authorize).
    ///
    /// The token's `iss` decides which keys may verify it: the provider's, this server's own
    /// (broker mode), or those of the trusted peer that issuer names. Any other issuer is
    /// refused before any key is looked up, so it causes no request.
    pub async fn validate(&self, token: &str) -> Result<IdToken, AuthError> {
        self.validate_as(token, Source::Any).await
    }

    /// Validates a token of the identity provider only (not a minted or peer token).
    pub(crate) async fn validate_provider_token(&self, token: &str) -> Result<IdToken, AuthError> {
        self.validate_as(token, Source::Provider).await
    }

    async fn validate_as(&self, token: &str, source: Source) -> Result<IdToken, AuthError> {
        let inner = &self.0;
        let now = inner.clock.now();
        if token.len() > inner.config.max_token_bytes {
            return Err(AuthError::invalid("the token is empty or too long"));
        }
        let key = inner.cache.as_ref().and_then(|_| token::cache_key(token));
        if let (Some(cache), Some(key)) = (&inner.cache, &key)
            && let Some(hit) = cache.get(key, now)
            && (source == Source::Any || self.is_provider_issuer(hit.issuer()))
        {
            return Ok(hit);
        }
        // Read before any key is, so that a key withdrawn during this validation keeps its
        // result out of the cache.
        let withdrawals = inner.cache.as_ref().map_or(0, TokenCache::withdrawals);
        let jws = token::parse_jws(
            token,
            inner.config.max_token_bytes,
            &inner.config.algorithms,
        )?;
        let iss = jws
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        // The issuer decides whose keys verify the token; it is checked before any key is
        // looked up, so a token naming any other issuer causes no fetch.
        let broker = inner
            .broker
            .as_ref()
            .filter(|b| source == Source::Any && b.issuer() == iss);
        let peers = inner
            .peers
            .as_ref()
            .filter(|p| broker.is_none() && source == Source::Any && p.trusts(&iss));
        // Every await below is boxed and taken only when something must be fetched, so the
        // future of a validation that can be decided in memory stays small.
        let provider_issuer = match (broker, peers) {
            (None, None) => Some(inner.provider.issuer()),
            _ => None,
        };
        let (issuer, audience) = match (broker, &provider_issuer) {
            (Some(broker), _) => (broker.issuer(), Some(broker.audience())),
            (None, Some(issuer)) => (
                issuer.as_str(),
                inner.config.audience.as_ref().map(|a| a.as_str()),
            ),
            // A trusted peer's token: the audience federating instances share (else this
            // server's `audience`; the configuration requires one of them with trusted issuers).
            (None, None) => (
                iss.as_str(),
                inner
                    .config
                    .broker_audience
                    .as_ref()
                    .or(inner.config.audience.as_ref())
                    .map(|a| a.as_str()),
            ),
        };
        token::check_issuer(&jws.claims, issuer)?;
        let times = token::check_registered(
            &jws.claims,
            &Expectations {
                now,
                leeway: inner.leeway,
                issuer,
                audience,
            },
        )?;
        if !inner.config.accept_id_tokens {
            token::check_not_id_token(&jws.claims)?;
        }
        let signed = jws.signed();
        match (broker, peers) {
            (Some(broker), _) => match broker.verify_now(signed, now) {
                Some(verdict) => verdict?,
                None => Box::pin(broker.verify(signed, now)).await?,
            },
            (None, Some(peers)) => {
                let store = inner.broker.as_ref().and_then(|b| b.connected_store());
                let store = store.as_ref();
                match peers.verify_now(store, &iss, signed) {
                    Some(verdict) => verdict?,
                    None => Box::pin(peers.verify(store, &iss, signed)).await?,
                }
            }
            (None, None) => match inner.provider.verify_now(signed) {
                Some(verdict) => verdict?,
                None => Box::pin(inner.provider.verify(signed)).await?,
            },
        }
        let validated = IdToken::new(jws.claims, times)
            .ok_or_else(|| AuthError::invalid("the token claims are malformed"))?;
        if let (Some(cache), Some(key)) = (&inner.cache, &key) {
            cache.insert(key, validated.clone(), now, inner.leeway, withdrawals);
        }
        Ok(validated)
    }

    /// Whether `issuer` is the identity provider's (not this server's or a peer's).
    pub(crate) fn is_provider_issuer(&self, issuer: &str) -> bool {
        let inner = &self.0;
        inner.broker.as_ref().is_none_or(|b| b.issuer() != issuer)
            && !inner.peers.as_ref().is_some_and(|p| p.trusts(issuer))
    }

    /// `GET /auth/v2/.well-known/jwks.json` (broker mode): the public keys of this server,
    /// every published one. Outside broker mode the route is not mounted, and this answers
    /// 400 `invalid_request`.
    pub async fn jwks_endpoint(&self) -> Result<crate::EndpointResponse, AuthError> {
        let Some(broker) = &self.0.broker else {
            return Err(AuthError::oauth(
                "invalid_request",
                "broker mode is off: this server publishes no keys",
            ));
        };
        broker
            .jwks(self.now())
            .await
            .map(|body| crate::EndpointResponse::Json { status: 200, body })
    }

    /// Checks a validated token against policy `P` and the configured default constraints.
    pub fn check<P: Policy>(&self, token: &IdToken) -> Result<(), AuthError> {
        let lists = self.0.config.string_claims_as_lists;
        token::check_scopes(token, P::SCOPES)?;
        token::check_rules(token, P::CLAIMS, lists)?;
        token::check_constraints(token, &self.0.config.claims, lists)
    }

    /// The whole check of a protected route: the `Authorization` header values of the request
    /// (in order), validation, then policy `P`.
    pub async fn authorize<'a, P: Policy>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<IdToken, AuthError> {
        let token = bearer_token(authorization, self.0.config.max_token_bytes)?;
        let validated = self.validate(token).await?;
        self.check::<P>(&validated)?;
        Ok(validated)
    }

    /// Like [`authorize`](Self::authorize) for optional protection: any failure gives `None`.
    /// A provider outage is logged, since it turns signed-in users into anonymous ones: as a
    /// warning the first time and then once every ten seconds, the others at DEBUG.
    pub async fn authorize_optional<'a, P: Policy>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IdToken> {
        match self.authorize::<P>(authorization).await {
            Ok(token) => Some(token),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                self.log_outage(OutageLog::OptionalSkipped, &e);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "optional authentication: no valid token");
                None
            }
        }
    }

    /// Logs what a provider outage (`error`) did to a request: as a warning the first time of
    /// its kind, then once every [`OUTAGE_LOG_INTERVAL_SECS`], the others at DEBUG. The
    /// provider fetches log their own failures, paced by their backoff; this says what the
    /// outage does to requests.
    pub(crate) fn log_outage(&self, log: OutageLog, error: &AuthError) {
        let message = match log {
            OutageLog::NotChecked => "bearer token not checked: identity provider unavailable",
            OutageLog::OptionalSkipped => {
                "optional authentication skipped: identity provider unavailable"
            }
            OutageLog::ProviderTrouble => PROVIDER_TROUBLE,
        };
        if self.outage_warning_due(log) {
            tracing::warn!(error = %error, "{message}");
        } else {
            tracing::debug!(error = %error, "{message}");
        }
    }

    /// Logs an answer of the provider's own trouble (`status`: busy, failing or unexpected) to
    /// a request made for a client, paced as [`log_outage`](Self::log_outage) paces outages:
    /// while the provider throttles or fails, every such request gets one.
    pub(crate) fn log_provider_trouble(&self, status: u16, error: &AuthError) {
        if self.outage_warning_due(OutageLog::ProviderTrouble) {
            tracing::warn!(status, error = %error, "{PROVIDER_TROUBLE}");
        } else {
            tracing::debug!(status, error = %error, "{PROVIDER_TROUBLE}");
        }
    }

    /// Whether an [`OutageLog`] is due as a warning now. A clock set back behind the last
    /// warning makes the next one due at once, so that it cannot silence the warnings until it
    /// has caught up.
    fn outage_warning_due(&self, log: OutageLog) -> bool {
        log_due(&self.0.outage_warned_at[log as usize], self.0.clock.now())
    }

    /// Renders `error` with the configured renderer, or the default JSON body and challenge.
    ///
    /// A header of the configured renderer that no HTTP response can carry is left out (see
    /// [`ErrorRenderer`]); the first time, a warning says which.
    pub fn render(&self, error: &AuthError) -> ErrorResponse {
        let Some(render) = &self.0.renderer else {
            return error.to_response(self.0.config.realm.as_deref());
        };
        let mut response = render(error);
        let dropped = response.drop_invalid_headers();
        if !dropped.is_empty() && !self.0.renderer_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                headers = ?dropped,
                "the error renderer returned headers that are not valid HTTP; they are left out of \
                 its answers (this is logged once)"
            );
        }
        response
    }
}

/// The log message of [`OutageLog::ProviderTrouble`].
const PROVIDER_TROUBLE: &str =
    "identity provider could not serve a request (busy, failing or unexpected)";

/// The shortest time between two warnings of one [`OutageLog`] kind.
const OUTAGE_LOG_INTERVAL_SECS: i64 = 10;

/// Logs at `$level` (such as `warn`) at most once every [`OUTAGE_LOG_INTERVAL_SECS`] from
/// this call site, for the whole process, and at DEBUG otherwise: for lines that anyone can
/// make the server write once per request (a provider that refuses the device flow to this
/// client answers every `POST /device` so), which would otherwise grow the log at the rate of
/// whoever sends them. The first line, and the first after each interval, keeps its level.
macro_rules! paced_log {
    ($level:ident, $($arg:tt)+) => {{
        static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
        if $crate::auth::log_due(&LAST, $crate::clock::Clock::now(&$crate::clock::SystemClock)) {
            tracing::$level!($($arg)+);
        } else {
            tracing::debug!($($arg)+);
        }
    }};
}
pub(crate) use paced_log;

/// Whether a paced warning may be written at `now`, `last` holding when one last was (or
/// `i64::MIN`): once every [`OUTAGE_LOG_INTERVAL_SECS`], and at once after a clock set back.
/// Of callers racing for the same moment one wins; the others log at DEBUG.
pub(crate) fn log_due(last: &AtomicI64, now: i64) -> bool {
    let was = last.load(Ordering::Relaxed);
    (now < was || was.saturating_add(OUTAGE_LOG_INTERVAL_SECS) <= now)
        && last
            .compare_exchange(was, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// What a provider outage did to a request, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutageLog {
    /// A guard refused the request (503), or actix-web's `Option` extractor made it `None`.
    NotChecked = 0,
    /// Optional protection let the request in as anonymous.
    OptionalSkipped = 1,
    /// The provider answered a request made for a client with a status of its own trouble:
    /// busy (408, 429, 503, 504), failing (another 5xx) or unexpected (3xx).
    ProviderTrouble = 2,
}

/// Which issuers a token may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The provider, this server (broker mode) or a trusted peer.
    Any,
    /// The provider only.
    Provider,
}

/// Extracts the bearer token from the `Authorization` header values.
///
/// No header, or another scheme (`Basic ...`, whatever follows it): missing token (401, bare
/// challenge). Several headers, a non-text value, or `Bearer` followed by more than one word:
/// 400 `invalid_request`. An empty token, or a value longer than the token limit: 401
/// `invalid_token`, before any other work on the token.
pub(crate) fn bearer_token<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    max_token_bytes: usize,
) -> Result<&'a str, AuthError> {
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Err(AuthError::missing());
    };
    if values.next().is_some() {
        return Err(AuthError::new(
            ErrorKind::InvalidRequest,
            "more than one Authorization header was sent",
        ));
    }
    // The scheme first, on the bytes: credentials of another scheme are no bearer token,
    // whatever their length or encoding.
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |last| last + 1);
    let value = value.get(start..end).unwrap_or_default();
    let scheme = value.split(|b| *b == b' ').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::missing());
    }
    // Saturating: the configuration bounds the limit, but a header must never be measured
    // against a sum that wrapped.
    if value.len() > max_token_bytes.saturating_add("Bearer ".len() + 16) {
        return Err(AuthError::invalid("the token is too long"));
    }
    let malformed = || {
        AuthError::new(
            ErrorKind::InvalidRequest,
            "the Authorization header is malformed",
        )
    };
    let value = std::str::from_utf8(value).map_err(|_| malformed())?;
    let token = value
        .get("Bearer".len()..)
        .unwrap_or_default()
        .trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::invalid("the bearer token is empty"));
    }
    // One vectorised scan for the three separators: a char-set pattern walks the string a
    // char at a time, which costs as much as the rest of a cached validation on a long token.
    if memchr::memchr3(b' ', b'\t', b',', token.as_bytes()).is_some() {
        return Err(malformed());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(values: &[&[u8]]) -> ErrorKind {
        match bearer_token(values.iter().copied(), 8192) {
            Ok(t) => panic!("accepted {t}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for h in [
            &b"Bearer abc"[..],
            b"bearer abc",
            b"BEARER abc",
            b"Bearer  abc",
        ] {
            assert_eq!(bearer_token([h], 8192).ok(), Some("abc"));
        }
    }

    #[test]
    fn other_schemes_count_as_no_token() {
        assert_eq!(kind(&[]), ErrorKind::MissingToken);
        assert_eq!(kind(&[b"Basic dXNlcjpwYXNz"]), ErrorKind::MissingToken);
        assert_eq!(kind(&[b"Bearerabc"]), ErrorKind::MissingToken);
        let long_basic = format!("Basic {}", "a".repeat(20_000));
        assert_eq!(kind(&[long_basic.as_bytes()]), ErrorKind::MissingToken);
        assert_eq!(kind(&[b"Basic \xff\xfe"]), ErrorKind::MissingToken);
        assert_eq!(kind(&[b" \tBasic abc\t"]), ErrorKind::MissingToken);
        assert_eq!(kind(&[b"\xff abc"]), ErrorKind::MissingToken);
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        assert_eq!(kind(&[b"Bearer"]), ErrorKind::InvalidToken);
        assert_eq!(kind(&[b"Bearer "]), ErrorKind::InvalidToken);
        assert_eq!(kind(&[b"Bearer a b"]), ErrorKind::InvalidRequest);
        assert_eq!(kind(&[b"Bearer \xff\xfe"]), ErrorKind::InvalidRequest);
        assert_eq!(kind(&[b"Bearer a", b"Bearer b"]), ErrorKind::InvalidRequest);
    }

    /// Every await that fetches is boxed, so a validation decided in memory (a cache hit, or
    /// known keys) is a small future: frameworks box handler futures per request, and its size
    /// is allocated and copied each time. It was over 5 KB before the fetches were boxed.
    #[test]
    fn the_validation_future_stays_small() {
        let config = crate::OidcConfig::builder()
            .discovery_url("http://127.0.0.1:9/.well-known/openid-configuration")
            .client_id("api")
            .build();
        let Ok(config) = config else {
            panic!("valid configuration");
        };
        let auth = OidcAuth::new(config);
        let validate = auth.validate("a.b.c");
        assert!(size_of_val(&validate) <= 1024, "{}", size_of_val(&validate));
        let authorize = auth.authorize::<crate::NoPolicy>([&b"Bearer a.b.c"[..]]);
        assert!(
            size_of_val(&authorize) <= 1024,
            "{}",
            size_of_val(&authorize)
        );
    }

    /// A limit near `usize::MAX` adds the scheme's length without overflowing (a panic in
    /// debug builds, and a wrapped limit that refuses every token in release builds).
    #[test]
    fn the_largest_token_limit_does_not_overflow() {
        assert_eq!(
            bearer_token([&b"Bearer abc"[..]], usize::MAX).ok(),
            Some("abc")
        );
    }

    #[test]
    fn oversized_header_is_an_invalid_token() {
        let long = format!("Bearer {}", "a".repeat(20_000));
        assert_eq!(kind(&[long.as_bytes()]), ErrorKind::InvalidToken);
    }
}
