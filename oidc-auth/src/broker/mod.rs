//! Broker mode: the server signs its own tokens for the users its identity provider
//! authenticated, keeps the provider's tokens server-side, and issues rotating refresh tokens.
//!
//! * Login, callback and device polling end in a **session** (the provider subject, the
//!   provider refresh token encrypted at rest, the user's claims) and answer with an access
//!   token this server signed plus an opaque refresh token stored only as its SHA-256. The
//!   token names its session and carries a tag made with a key the store does not hold, so a
//!   record written into the store cannot lead a token to another user's session.
//! * **Refresh** spends the presented token and issues its successor in one store operation;
//!   presenting a spent token again revokes the whole chain. Concurrent refreshes of one token
//!   in this process share one provider refresh and one answer.
//! * **Token exchange** (RFC 8693) turns a valid subject token into a token for an allowed
//!   audience, never with more scope than the subject token had.
//! * Validation of the server's own tokens (and of trusted peers') needs no database: keys are
//!   held in memory and the store is read only for an unknown key id.

mod cipher;
mod exchange;
/// Store methods of a test store that pass through to its `inner` store.
#[cfg(test)]
macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> crate::store::StoreFuture<'_, $out> {
            self.inner.$name($($arg),*)
        })*
    };
}

#[cfg(test)]
mod key_outage_tests;
mod keys;
mod peers;

use crate::flow::MAX_DEVICE_SECONDS;
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::auth::{OidcAuth, log_due};
use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::error::{AuthError, ErrorKind};
use crate::flow::seal::{random, try_random};
use crate::provider::Signed;
use crate::store::{RefreshRecord, RotateOutcome, Session, Store, StoreError};
use crate::token::{IdToken, groups_of, roles_of};

use cipher::AtRest;
pub(crate) use exchange::ExchangeRequest;
use keys::Keys;
pub(crate) use peers::Peers;

/// Longest time a connection to the store (and its migration, which may wait for another
/// instance's) may take. It runs in a task of its own; requests wait for it at most
/// [`CONNECT_WAIT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a request waits for the store's first connection before it answers 503: the bound
/// of one store call, so a database that is down at start answers within 5 s too.
const CONNECT_WAIT: Duration = crate::store::OPERATION_TIMEOUT;
/// How long after a failed connection to the store no new one is tried.
const CONNECT_RETRY: Duration = Duration::from_secs(5);
/// Broker work running detached from its request at most, refreshes and revocations each: a
/// client that sends and goes away in a loop cannot pile up tasks that hold database
/// connections, and a flood of revocations (which need no client authentication) cannot take
/// the refreshes' places.
const MAX_DETACHED: usize = 1024;
/// Device codes whose polling pace is tracked at most.
const MAX_TRACKED_DEVICES: usize = 10_000;
/// How much earlier than its interval a device poll may come before it is `slow_down`: the
/// clock counts whole seconds, and clients add jitter to their sleeps (py-oidc-auth-client up to
/// -0.2 s). Without it a client that keeps the interval would now and then be slowed down, and
/// after a `slow_down` that client still sleeps the old interval once more.
const DEVICE_POLL_GRACE: i64 = 1;
/// Longest refresh token looked up.
const MAX_REFRESH_TOKEN: usize = 512;
/// Length of a session id: 16 random bytes, base64url.
const SESSION_ID_LEN: usize = 22;
/// Length of the random part of a refresh token: 32 bytes, base64url.
const REFRESH_RANDOM_LEN: usize = 43;
/// Length of the tag that binds a refresh token to its session: 16 bytes of an HMAC, base64url.
const REFRESH_TAG_LEN: usize = 22;
/// The marker of a refresh token whose rotation has been answered to a request (see
/// [`Broker::answer_spent`]).
const ANSWERED: &[u8] = b"refresh answered ";
/// The namespace of the markers of refresh tokens whose revocation has begun.
const REVOKING: &[u8] = b"refresh revoked ";
/// How long the marker of a revocation is kept: as long as the token it spent stays on record
/// as spent ([`crate::store::SPENT_REFRESH_KEPT`], counted from the spend a moment later), so
/// that a revocation whose later steps failed is never taken for a concurrent refresh's
/// rotation; afterwards the token is not found at all.
const REVOKING_MARK_SECS: i64 = crate::store::SPENT_REFRESH_KEPT + 300;
/// How often expired rows are purged (seconds), on the back of logins and refreshes.
const PURGE_EVERY: i64 = 3600;

/// How soon a purge that failed is tried again, in seconds; also the shortest time between
/// purges while writes come faster than [`PURGE_AFTER_WRITES`] per purge.
const PURGE_RETRY: i64 = 60;

/// Writes of broker state after which a purge is due before the hour is up: anyone can have
/// rows written (single-use markers of login handles spent by error callbacks, say), and an
/// hour of such rows would otherwise stay until the next purge, long after they expired.
const PURGE_AFTER_WRITES: u64 = 10_000;

/// When a store outage and a store inconsistency were last logged at WARN and ERROR (unix
/// seconds), for the whole process: a store that is down fails every request that reaches it,
/// some of them (a login's callback, a key fetch before the first connection) without any
/// credential, and one line per request would flood the log. The others within
/// ten seconds go to DEBUG (see [`log_due`]).
static STORE_LOGGED_AT: [AtomicI64; 2] = [AtomicI64::new(i64::MIN), AtomicI64::new(i64::MIN)];

/// A store failure as the client sees it: 503 for an outage (the caller may retry), 400 for
/// input the store refuses. The cause goes to the log only: an outage as a warning and an
/// inconsistency as an error, each at most once per ten seconds (the others at DEBUG).
pub(crate) fn store_error(e: StoreError) -> AuthError {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    store_error_logged(e, &STORE_LOGGED_AT, now)
}

/// [`store_error`] with the times of the last logs and the time now given.
fn store_error_logged(e: StoreError, logged_at: &[AtomicI64; 2], now: i64) -> AuthError {
    match e {
        StoreError::Unavailable(reason) => {
            if log_due(&logged_at[0], now) {
                tracing::warn!(%reason, "the broker store is unavailable (more failures within 10 s are logged at DEBUG)");
            } else {
                tracing::debug!(%reason, "the broker store is unavailable");
            }
            AuthError::unavailable("the session store is unavailable").with_retry_after(5)
        }
        StoreError::Rejected(reason) => {
            tracing::info!(%reason, "the broker store refused a value");
            AuthError::oauth("invalid_request", "the request cannot be stored")
        }
        StoreError::Corrupt(reason) => {
            if log_due(&logged_at[1], now) {
                tracing::error!(%reason, "the broker store is inconsistent (more within 10 s are logged at DEBUG)");
            } else {
                tracing::debug!(%reason, "the broker store is inconsistent");
            }
            AuthError::unavailable("the session store is inconsistent").with_retry_after(30)
        }
    }
}

pub(crate) fn sha256(value: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, value).as_ref());
    out
}

/// `N` random bytes, base64url: an identifier no one can guess, or 500 when the system random
/// number generator fails (never a predictable one).
fn random_id<const N: usize>() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(try_random::<N>()?))
}

/// The associated data of a session's sealed provider refresh token: the session's id,
/// subject, stored claims and expiry, so that a row whose subject, claims or lifetime were
/// changed in the database does not open, and the session ends instead of minting them.
fn session_row(session: &Session) -> String {
    json!([
        "session",
        session.id,
        session.subject,
        session.userinfo,
        session.expires_at
    ])
    .to_string()
}

/// The keys of the refresh tokens made under one session key.
struct TokenKeys {
    /// Tags a token, binding it to its session (see [`Broker::bound_session`]).
    binding: hmac::Key,
    /// Derives a token's successor from it (see [`Broker::successor_of`]).
    successors: hmac::Key,
    /// Derived from the client secret before an encryption key was set: the successors of its
    /// tokens are made with the encryption key's instead, so that sessions leave it at their
    /// next refresh and a later change of the secret does not end them. A first encryption key
    /// is set on all instances at once, so they agree on those successors.
    moves_on: bool,
}

impl TokenKeys {
    fn derived_from(session_key: &[u8; 32], moves_on: bool) -> Self {
        let key =
            |purpose| hmac::Key::new(hmac::HMAC_SHA256, &AtRest::derive(session_key, purpose));
        Self {
            binding: key("refresh token binding"),
            successors: key("refresh token successors"),
            moves_on,
        }
    }
}

fn invalid_grant(description: &'static str) -> AuthError {
    AuthError::oauth("invalid_grant", description)
}

/// The pace of one device code's polling.
struct DevicePoll {
    /// The gap a poll must keep after the last one.
    interval: i64,
    expires_at: i64,
    last_poll: Option<i64>,
    /// After a `slow_down`, the gap before it: the next poll may keep that one instead (see
    /// [`Broker::pace_device_poll`]).
    slowed_from: Option<i64>,
    /// After the provider's own `slow_down` (or an outage), no poll is passed on to it before
    /// this time; the ones in between are answered `authorization_pending` here.
    provider_hold: i64,
    /// How long that hold was set for: a hold further ahead than that was set before the clock
    /// was set back, and is over.
    held_for: i64,
}

impl DevicePoll {
    /// A `slow_down`: the interval grows by 5 s, and the next poll may keep the one before.
    fn slow_down(&mut self) {
        self.slowed_from = Some(self.interval);
        self.interval = (self.interval + 5).min(MAX_DEVICE_SECONDS);
    }
}

/// A refresh under way in this process: its task sends the outcome here. Every request for the
/// same token while it runs waits for that outcome, whichever of them goes away.
type Flight = tokio::sync::watch::Receiver<Option<Result<Refreshed, AuthError>>>;

/// Takes a finished refresh out of the map, also when its task failed.
struct Landing<'a> {
    broker: &'a Broker,
    hash: [u8; 32],
    flight: Flight,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .broker
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&self.hash)
            .is_some_and(|f| f.same_channel(&self.flight))
        {
            flights.remove(&self.hash);
        }
    }
}

/// A refresh's answer, and until when its token's "answered" marker is kept once a request
/// receives it (see [`Broker::answer_spent`]).
#[derive(Clone)]
struct Refreshed {
    body: Value,
    /// Until when the token counts as answered once a request has received this.
    mark_until: i64,
}

/// The state of the store's connection while there is no store yet.
#[derive(Default)]
struct Connecting {
    /// The attempt under way: true once it has ended, connected or not.
    under_way: Option<tokio::sync::watch::Receiver<bool>>,
    /// When the last attempt failed.
    failed_at: Option<std::time::Instant>,
}

/// The end of a connection attempt, also when its task is dropped: a failure is recorded
/// unless it connected, and the requests waiting for it are woken.
struct AttemptEnd {
    done: tokio::sync::watch::Sender<bool>,
    state: Arc<Mutex<Connecting>>,
    connected: bool,
}

impl Drop for AttemptEnd {
    fn drop(&mut self) {
        if !self.connected {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed_at = Some(std::time::Instant::now());
        }
        let _ = self.done.send(true);
    }
}

/// Broker state shared by every clone of an [`OidcAuth`].
pub(crate) struct Broker {
    issuer: String,
    audience: String,
    /// The `client_id` of the tokens minted at a login or refresh (RFC 9068 section 2.2
    /// requires one in an `at+jwt`): this server's client at the provider, which the user
    /// signed in to. A token exchange names the exchange client instead.
    client_id: String,
    /// The provider clients whose `resource_access` roles a minted token carries: this
    /// server's client and the minted audience.
    role_clients: Vec<String>,
    exchange_audiences: Vec<String>,
    url: Option<String>,
    store: Arc<tokio::sync::OnceCell<Arc<dyn Store>>>,
    /// The connection to the store under way, if any, and when the last one failed.
    connecting: Arc<Mutex<Connecting>>,
    /// Permits for refreshes detached from their requests ([`MAX_DETACHED`]).
    detached_refreshes: Arc<tokio::sync::Semaphore>,
    /// Permits for revocations detached from their requests ([`MAX_DETACHED`]).
    detached_revocations: Arc<tokio::sync::Semaphore>,
    keys: Keys,
    sessions: AtRest,
    /// The keys new refresh tokens are made with.
    token_keys: TokenKeys,
    /// Those of the previous session keys: tokens they made are still taken, and their
    /// successors made with them.
    earlier_token_keys: Vec<TokenKeys>,
    access_ttl: i64,
    /// The clock leeway of validation: a key stays published this long past the last `exp`
    /// it may sign.
    leeway: i64,
    /// The bearer token limit of validation: a minted token must fit it to be of any use.
    max_token_bytes: usize,
    refresh_ttl: i64,
    device_ttl: i64,
    scopes: String,
    flights: Mutex<HashMap<[u8; 32], Flight>>,
    devices: Mutex<HashMap<[u8; 32], DevicePoll>>,
    last_purge: Arc<Mutex<i64>>,
    /// Writes of broker state since the last purge began.
    writes_since_purge: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub(crate) fn new(
        config: &OidcConfig,
        store: Option<Arc<dyn Store>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let audience = config
            .broker_audience
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let issuer = match &config.proxy {
            Some(proxy) => crate::config::broker_issuer(proxy),
            None => audience.clone(),
        };
        let (explicit, previous) = cipher::configured_keys(config);
        let from_secret = config
            .client_secret()
            .map(|secret| AtRest::derive(secret.expose().as_bytes(), "provider refresh tokens"));
        let mut previous_for_sessions = previous;
        let session_key = match (explicit, from_secret) {
            (Some(key), derived) => {
                // Sessions sealed before an encryption key was set used the key derived from
                // the client secret: they still open while the deployer says so, and no
                // longer: anyone who knows the secret could otherwise tag refresh tokens.
                if config.previous_key_from_client_secret {
                    tracing::warn!(
                        "the key derived from the client secret is kept beside the encryption key (OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET): unset it once the sessions started before the encryption key have ended"
                    );
                    previous_for_sessions.extend(derived);
                }
                key
            }
            (None, Some(derived)) => {
                tracing::warn!(
                    "no encryption key configured: provider refresh tokens are encrypted with a key derived from the client secret; set an encryption key (OIDC_BROKER_ENCRYPTION_KEY) so that rotating the secret does not end every session"
                );
                derived
            }
            (None, None) => {
                tracing::warn!(
                    "no encryption key configured and no client secret: provider refresh tokens are encrypted with a per-process key, so sessions end when the process restarts; set OIDC_BROKER_ENCRYPTION_KEY"
                );
                random::<32>()
            }
        };
        if explicit.is_none() {
            tracing::warn!(
                "no encryption key configured: broker signing keys are stored unencrypted"
            );
        }
        let access_ttl = crate::clock::secs(config.access_token_lifetime);
        let leeway = crate::clock::secs(config.leeway);
        let cell = tokio::sync::OnceCell::new();
        if let Some(store) = store {
            let _ = cell.set(store);
        }
        // The clients whose `resource_access` roles are this API's: its own client, the
        // audience its access tokens must carry, and the audience it mints for.
        let mut role_clients = vec![config.client_id.clone()];
        let accepted = config.audience.as_ref().map(|a| a.as_str().to_owned());
        for client in accepted.into_iter().chain([audience.clone()]) {
            if !client.is_empty() && !role_clients.contains(&client) {
                role_clients.push(client);
            }
        }
        Self {
            issuer,
            audience,
            client_id: config.client_id.clone(),
            role_clients,
            exchange_audiences: config.exchange_audiences.clone(),
            url: config.broker_store_url().map(str::to_owned),
            store: Arc::new(cell),
            connecting: Arc::new(Mutex::new(Connecting::default())),
            detached_refreshes: Arc::new(tokio::sync::Semaphore::new(MAX_DETACHED)),
            detached_revocations: Arc::new(tokio::sync::Semaphore::new(MAX_DETACHED)),
            keys: Keys::new(
                config.broker_signing_algorithm,
                crate::clock::secs(config.key_rotation_period),
                access_ttl + leeway,
                leeway,
                AtRest::configured(config),
                clock,
            ),
            sessions: AtRest::with_previous(Some(session_key), &previous_for_sessions),
            token_keys: TokenKeys::derived_from(&session_key, false),
            earlier_token_keys: previous_for_sessions
                .iter()
                .map(|key| TokenKeys::derived_from(key, Some(*key) == from_secret))
                .collect(),
            access_ttl,
            leeway,
            max_token_bytes: config.max_token_bytes,
            refresh_ttl: crate::clock::secs(config.refresh_token_lifetime),
            device_ttl: crate::clock::secs(config.device_session_lifetime),
            scopes: config
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            flights: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
            last_purge: Arc::new(Mutex::new(i64::MIN)),
            writes_since_purge: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The `iss` of minted tokens.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of minted tokens.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// The store, connected (and migrated) on first use; a failure is retried later.
    ///
    /// The connection runs in a task of its own, bounded by [`CONNECT_TIMEOUT`], so a slow
    /// migration completes even though requests stop waiting for it after [`CONNECT_WAIT`] and
    /// answer 503. After a failed connection no new one is tried for [`CONNECT_RETRY`]:
    /// requests meanwhile answer 503 at once instead of each waiting for an attempt of its own.
    pub(crate) async fn store(&self) -> Result<Arc<dyn Store>, AuthError> {
        if let Some(store) = self.store.get() {
            return Ok(Arc::clone(store));
        }
        let Some(mut done) = self.connection_attempt() else {
            return self.store.get().cloned().ok_or_else(|| {
                store_error(StoreError::Unavailable(
                    "the store could not be reached lately".into(),
                ))
            });
        };
        let _ = tokio::time::timeout(CONNECT_WAIT, done.wait_for(|done| *done)).await;
        self.store.get().cloned().ok_or_else(|| {
            store_error(StoreError::Unavailable(
                "the store is not connected yet".into(),
            ))
        })
    }

    /// A permit to run work of `pool` detached from its request, or 503 when [`MAX_DETACHED`]
    /// are out.
    fn detach(
        pool: &Arc<tokio::sync::Semaphore>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        Arc::clone(pool)
            .try_acquire_owned()
            .map_err(|_| AuthError::unavailable("too much of this work is under way; try again"))
    }

    /// The connection attempt to wait for: the one under way, or a new one; none while the
    /// last failure is recent.
    fn connection_attempt(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        let mut connecting = self.connecting.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.initialized() {
            // Connected since the caller looked: an attempt that has ended, at once.
            return connecting.under_way.clone();
        }
        // An attempt under way; one whose task went away without a word (a panic, its runtime
        // shut down) counts as failed.
        if let Some(under_way) = &connecting.under_way
            && !*under_way.borrow()
        {
            if under_way.has_changed().is_ok() {
                return Some(under_way.clone());
            }
            connecting.under_way = None;
            connecting.failed_at = Some(std::time::Instant::now());
        }
        if connecting
            .failed_at
            .is_some_and(|at| at.elapsed() < CONNECT_RETRY)
        {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (done, under_way) = tokio::sync::watch::channel(false);
        connecting.under_way = Some(under_way.clone());
        let (cell, url) = (Arc::clone(&self.store), self.url.clone());
        let state = Arc::clone(&self.connecting);
        runtime.spawn(async move {
            // Ends the attempt however the task ends: connected, failed, or dropped.
            let mut end = AttemptEnd {
                done,
                state,
                connected: false,
            };
            let connect = async {
                match &url {
                    Some(url) => crate::store::connect(url).await,
                    None => default_store().await,
                }
            };
            let connected = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Unavailable(
                    "connecting to the store timed out".into(),
                )),
            };
            match connected {
                Ok(store) => {
                    let _ = cell.set(store);
                    end.connected = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the broker store could not be connected; retrying later");
                }
            }
        });
        Some(under_way)
    }

    /// The store if it is connected already, without waiting.
    pub(crate) fn connected_store(&self) -> Option<Arc<dyn Store>> {
        self.store.get().cloned()
    }

    /// Connects the store and makes sure a signing key exists.
    pub(crate) async fn warm_up(&self, now: i64) -> Result<(), AuthError> {
        let store = self.store().await?;
        self.keys.for_signing(&*store, now).await.map(|_| ())
    }

    /// The JWKS of the broker's published keys.
    pub(crate) async fn jwks(&self, now: i64) -> Result<Value, AuthError> {
        let ring = match self.store().await {
            Ok(store) => self.keys.for_publishing(&*store, now).await,
            Err(e) => Err(e),
        };
        match ring {
            Ok(ring) => Ok(ring.jwks(now)),
            // The keys in memory stay publishable while the store is down.
            Err(e) => {
                let ring = self.keys.current();
                if ring.keys.is_empty() {
                    Err(e)
                } else {
                    Ok(ring.jwks(now))
                }
            }
        }
    }

    /// Verifies the signature of a token this server minted with the keys in memory, without
    /// waiting: `None` when only the store can decide.
    pub(crate) fn verify_now(&self, signed: Signed<'_>, now: i64) -> Option<Result<(), AuthError>> {
        self.keys.verify_now(signed, now)
    }

    /// Verifies the signature of a token this server minted.
    pub(crate) async fn verify(&self, signed: Signed<'_>, now: i64) -> Result<(), AuthError> {
        let store = match self.connected_store() {
            Some(store) => store,
            // Nothing loaded yet (a fresh process): connecting is the only way to the keys.
            None => self.store().await?,
        };
        self.keys.verify(&*store, signed, now).await
    }

    /// The scope of a session whose provider named none: what the login asked for, which is
    /// all the provider can have granted (RFC 6749 section 5.1), and of that only what is
    /// configured (a client may ask for anything). A device grant asked for the configured
    /// scopes.
    fn scope_without_grant(&self, requested: Option<&str>) -> String {
        let Some(requested) = requested else {
            return self.scopes.clone();
        };
        requested
            .split(' ')
            .filter(|word| {
                matches!(*word, "openid" | "offline_access")
                    || self.scopes.split(' ').any(|configured| configured == *word)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The minted claims taken from a provider's (or peer's) token: see [`profile_of`].
    fn profile(&self, claims: &Map<String, Value>) -> Map<String, Value> {
        let clients: Vec<&str> = self.role_clients.iter().map(String::as_str).collect();
        profile_of(claims, &clients, true)
    }

    /// The minted claims of a token exchanged for `audience`. For another audience than this
    /// server's, the roles are that audience's own (`resource_access.<audience>`), the realm's
    /// and the groups: this API's roles (its clients' in `resource_access`, and the token's
    /// top-level `roles`, which are those of the audience the token was issued to) are no
    /// roles at the service the new token is for.
    pub(crate) fn profile_for(
        &self,
        claims: &Map<String, Value>,
        audience: &str,
    ) -> Map<String, Value> {
        if audience == self.audience {
            self.profile(claims)
        } else {
            profile_of(claims, &[audience], false)
        }
    }

    /// Signs an access token for `profile`.
    async fn mint(
        &self,
        profile: &Map<String, Value>,
        extra: &[(&str, Value)],
        audience: &str,
        lifetime: i64,
        now: i64,
    ) -> Result<(String, i64), AuthError> {
        let store = self.store().await?;
        let ring = self.keys.for_signing(&*store, now).await?;
        let (key, signer) = ring
            .signing(now)
            .ok_or_else(|| AuthError::unavailable("no broker signing key is available"))?;
        // Never past the time the key leaves the JWKS (less the leeway): its removal was set
        // when it was created, from the lifetime configured then, which may since have grown.
        let exp = now
            .saturating_add(lifetime.max(1))
            .min(key.remove_at.saturating_sub(self.leeway))
            .max(now.saturating_add(1));
        let mut claims = profile.clone();
        claims.insert("iss".into(), Value::String(self.issuer.clone()));
        claims.insert("aud".into(), Value::String(audience.to_owned()));
        claims.insert("jti".into(), Value::String(random_id::<16>()?));
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("client_id".into(), Value::String(self.client_id.clone()));
        for (name, value) in extra {
            claims.insert((*name).to_owned(), value.clone());
        }
        let header = json!({"alg": key.alg.as_str(), "typ": "at+jwt", "kid": key.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let signature = signer
            .sign(input.as_bytes())
            .ok_or_else(|| AuthError::unavailable("signing the token failed"))?;
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        // A token over the bearer limit would be refused (401) by every route of this server,
        // and then again at each refresh: the login fails clearly instead. A provider that puts
        // hundreds of groups into its tokens needs a larger `max_token_bytes`.
        if token.len() > self.max_token_bytes {
            tracing::warn!(
                bytes = token.len(),
                limit = self.max_token_bytes,
                "a minted token is over the bearer token limit; raise max_token_bytes for this provider's claims"
            );
            return Err(AuthError::new(
                ErrorKind::BadGateway,
                "the identity provider's claims make a token larger than this server accepts",
            ));
        }
        Ok((token, exp))
    }

    /// Starts a session after a successful login and answers Token JSON with tokens of this
    /// server. The provider's tokens stay here. `requested` is the scope a code grant's login
    /// asked for; a device grant (`None`) asked for the configured scopes.
    ///
    /// When no session could be made (the provider did not say who signed in, 502, or could not
    /// be asked, 503; the store failed), the caller revokes the provider's refresh token (see
    /// `Granted`).
    pub(crate) async fn start_session(
        &self,
        auth: &OidcAuth,
        answer: &Map<String, Value>,
        identity: Option<IdToken>,
        requested: Option<&str>,
    ) -> Result<Value, AuthError> {
        let device = requested.is_none();
        let now = auth.now();
        let mut claims = Map::new();
        let provider_access = answer
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !provider_access.is_empty()
            && let Ok(token) = auth.validate_provider_token(provider_access).await
        {
            // Only the user's own: a provider with per-application subjects (Azure AD) names
            // the user otherwise in a token for another application, and a refresh takes the
            // access token's claims only for the session's subject.
            if identity.as_ref().is_none_or(|id| id.sub() == token.sub()) {
                claims.extend(token.claims().clone());
            } else {
                tracing::warn!(
                    "the provider's access token names another subject than its ID token; its claims are left out"
                );
            }
        }
        if let Some(identity) = identity {
            claims.extend(identity.claims().clone());
        }
        // Why the provider could not be asked who signed in, when it could not.
        let mut unavailable = None;
        if claims.get("sub").and_then(Value::as_str).is_none() && !provider_access.is_empty() {
            match auth.provider_userinfo(provider_access).await {
                Ok(Some(info)) => claims.extend(info),
                Ok(None) => {}
                Err(e) => unavailable = Some(e),
            }
        }
        let Some(subject) = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
        else {
            if let Some(e) = unavailable {
                // A passing outage, not an answer that names nobody: 503, and the client
                // signs in again (py-oidc-auth-client polling a device code then uses the
                // browser).
                return Err(e);
            }
            return Err(AuthError::new(
                ErrorKind::BadGateway,
                "the identity provider did not say who signed in",
            ));
        };
        let scope = match answer
            .get("scope")
            .and_then(Value::as_str)
            .or_else(|| claims.get("scope").and_then(Value::as_str))
        {
            Some(scope) => scope.to_owned(),
            None => self.scope_without_grant(requested),
        };
        let mut profile = self.profile(&claims);
        profile.insert("scope".into(), Value::String(scope.clone()));
        let lifetime = if device {
            self.device_ttl
        } else {
            self.refresh_ttl
        };
        let expires_at = now.saturating_add(lifetime);
        let session_id = random_id::<16>()?;
        let (access, exp) = self
            .mint(
                &profile,
                &[("sid", Value::String(session_id.clone()))],
                &self.audience,
                self.access_ttl.min(lifetime),
                now,
            )
            .await?;
        let provider_refresh = answer
            .get("refresh_token")
            .and_then(Value::as_str)
            .unwrap_or("");
        let store = self.store().await?;
        let mut session = Session {
            provider_refresh_token: Vec::new(),
            id: session_id.clone(),
            subject,
            userinfo: Value::Object(profile).to_string(),
            expires_at,
        };
        session.provider_refresh_token = self
            .sessions
            .seal(&session_row(&session), provider_refresh.as_bytes())?;
        store.put_session(&session).await.map_err(store_error)?;
        // A session row without its refresh record could never be refreshed or revoked by its
        // client: if the record cannot be written, the row goes too (best effort; a purge takes
        // what is left at its expiry).
        let inserted = async {
            let refresh = Self::bind(&session_id, &random_id::<32>()?, &self.token_keys);
            store
                .insert_refresh(&RefreshRecord {
                    hash: sha256(refresh.as_bytes()),
                    family: random_id::<16>()?,
                    session_id: session_id.clone(),
                    expires_at,
                })
                .await
                .map_err(store_error)?;
            Ok::<_, AuthError>(refresh)
        }
        .await;
        let refresh = match inserted {
            Ok(refresh) => refresh,
            Err(e) => {
                if let Err(cleanup) = store.delete_session(&session_id).await {
                    tracing::warn!(error = %cleanup, "a session without its refresh token could not be removed; it is purged at its expiry");
                }
                return Err(e);
            }
        };
        self.maybe_purge(&store, now);
        Ok(token_json(&access, exp, &refresh, expires_at, &scope, now))
    }

    /// Deletes expired rows at most once per [`PURGE_EVERY`], in the background, or once per
    /// [`PURGE_RETRY`] after [`PURGE_AFTER_WRITES`] writes since the last purge, and again
    /// after [`PURGE_RETRY`] when that failed. Called on every write of broker state (logins,
    /// refreshes and single-use markers), so whatever adds rows also has them purged, whether
    /// or not anyone signs in.
    fn maybe_purge(&self, store: &Arc<dyn Store>, now: i64) {
        {
            use std::sync::atomic::Ordering::Relaxed;
            let writes = self
                .writes_since_purge
                .fetch_add(1, Relaxed)
                .saturating_add(1);
            let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
            // A clock set back (by more than the period) makes a purge due too, or none would
            // run until the clock passed the last one again; a `now` taken a little before the
            // last purge's, by a request that waited on the provider, does not.
            let since = now.saturating_sub(*last);
            let hourly = !(-PURGE_EVERY..PURGE_EVERY).contains(&since);
            let busy = writes >= PURGE_AFTER_WRITES && since >= PURGE_RETRY;
            if !(hourly || busy) {
                return;
            }
            *last = now;
            self.writes_since_purge.store(0, Relaxed);
        }
        let (store, last_purge) = (store.clone(), Arc::clone(&self.last_purge));
        tokio::spawn(async move {
            match store.purge_expired(now).await {
                Ok(rows) => tracing::debug!(rows, "purged expired broker state"),
                Err(e) => {
                    tracing::warn!(error = %e, "purging expired broker state failed; trying again soon");
                    let mut last = last_purge.lock().unwrap_or_else(|p| p.into_inner());
                    if *last == now {
                        *last = now.saturating_sub(PURGE_EVERY - PURGE_RETRY);
                    }
                }
            }
        });
    }

    /// Ends the session a broker refresh token belongs to (RFC 7009): its whole family is
    /// revoked and the session row, with the provider's sealed tokens, is deleted. A spent token
    /// revokes its family too, and so does one this server made that is no longer on record
    /// (spent long ago); a token it did not make, or of an ended session, changes nothing. Every case
    /// answers the same, so the answer tells nothing about a token. Access tokens minted before
    /// stay valid until their (short) expiry: they are checked without the store.
    ///
    /// The work runs in a task of its own: a client that goes away does not leave the token
    /// spent with its family or session still live.
    pub(crate) async fn revoke(&self, auth: &OidcAuth, token: &str) -> Result<(), AuthError> {
        // A token this server did not make names nothing to revoke: no work is started for it.
        if token.len() > MAX_REFRESH_TOKEN || self.bound_session(token).is_none() {
            return Ok(());
        }
        let permit = Self::detach(&self.detached_revocations)?;
        let (auth, token) = (auth.clone(), token.to_owned());
        let revocation = tokio::spawn(async move {
            let _permit = permit;
            match auth.broker() {
                Some(broker) => broker.revoke_now(&auth, &token).await,
                None => Ok(()),
            }
        });
        match tokio::time::timeout(crate::store::OPERATION_TIMEOUT, revocation).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuthError::unavailable("the revocation failed; try again")),
            Err(_) => Err(AuthError::unavailable(
                "the revocation is still under way; try again",
            )),
        }
    }

    /// The revocation itself, every step to the end whoever is still waiting: the session, the
    /// family (with its own, longer deadline), then the provider's refresh token.
    async fn revoke_now(&self, auth: &OidcAuth, token: &str) -> Result<(), AuthError> {
        let Some((session_id, _)) = self.bound_session(token) else {
            return Ok(());
        };
        let store = self.store().await?;
        // Marked before it is spent: a refresh that then finds it spent does not take this
        // spend for a concurrent refresh's and answer in its place while the session is still
        // there to mint from (see `refresh_once`).
        let now = auth.now();
        self.use_once(
            REVOKING,
            &sha256(token.as_bytes()),
            now.saturating_add(REVOKING_MARK_SECS),
            now,
        )
        .await?;
        // Rotating to a successor no one receives is how the store finds and spends a token
        // in one atomic step, under the same rules as a refresh.
        let outcome = store
            .rotate_refresh(&sha256(token.as_bytes()), &try_random::<32>()?, auth.now())
            .await
            .map_err(store_error)?;
        let (RotateOutcome::Rotated(record) | RotateOutcome::Spent(record)) =
            Self::of_session(outcome, session_id)
        else {
            // Made here but no longer on record: spent long ago, or its session has ended. It
            // was a token of its session, which ends as a spent token's does (its refresh
            // records go with it); an ended one changes nothing.
            if self.end_session(auth, &store, session_id).await? {
                tracing::info!("a broker session was revoked by its client");
            }
            return Ok(());
        };
        // The session first: without it no token of the family refreshes. Should a later step
        // fail, the token is spent but not revoked, so the client's retry finds it and does the
        // rest; revoked first, the retry would find nothing left to do and answer 200. The
        // provider token revoked is the one the deletion found: a refresh that rotated it
        // after an earlier read would otherwise leave the new one alive at the provider.
        self.end_session(auth, &store, &record.session_id).await?;
        store
            .revoke_family(&record.family)
            .await
            .map_err(store_error)?;
        tracing::info!("a broker session was revoked by its client");
        Ok(())
    }

    /// Deletes session `id` and revokes the provider refresh token the deletion hands over. At
    /// once: a retry after a later step failed finds the session, and the token with it, gone.
    /// Whether there was a session to end.
    async fn end_session(
        &self,
        auth: &OidcAuth,
        store: &Arc<dyn Store>,
        id: &str,
    ) -> Result<bool, AuthError> {
        let Some(session) = store.delete_session(id).await.map_err(store_error)? else {
            return Ok(false);
        };
        self.revoke_at_provider(auth, &session);
        Ok(true)
    }

    /// Revokes the provider refresh token of an ended session at the provider, in the
    /// background: the session is already gone here, so a slow or unreachable provider only
    /// delays its own side, and a failure is logged.
    fn revoke_at_provider(&self, auth: &OidcAuth, session: &Session) {
        let token = self
            .sessions
            .open(&session_row(session), &session.provider_refresh_token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|token| !token.is_empty());
        if let Some(token) = token {
            auth.revoke_refresh_in_background(token);
        }
    }

    /// `POST /auth/v2/token` with a broker refresh token.
    pub(crate) async fn refresh(&self, auth: &OidcAuth, token: &str) -> Result<Value, AuthError> {
        if token.len() > MAX_REFRESH_TOKEN || self.bound_session(token).is_none() {
            return Err(invalid_grant(
                "the refresh token is invalid, expired or revoked",
            ));
        }
        let hash = sha256(token.as_bytes());
        let mut flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            // A flight whose task is gone without landing it (dropped unrun when its runtime
            // shut down) has a closed channel: it would answer every later request 503 at once,
            // so it is replaced. A live task holds the sender; one that ended has landed.
            match flights.get(&hash).filter(|f| f.has_changed().is_ok()) {
                Some(flight) => flight.clone(),
                None => {
                    let flight =
                        Self::take_off(auth, token, hash, Self::detach(&self.detached_refreshes)?);
                    flights.insert(hash, flight.clone());
                    flight
                }
            }
        };
        let refreshed = match flight.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        }
        .unwrap_or_else(|| Err(AuthError::unavailable("the refresh failed; try again")))?;
        // Answered: from now on the spent token presented again is reuse. A client that went
        // away before this has no answer, and its retry answers in this one's place. Of the
        // requests sharing or repeating the answer, the first marks it; the others find it
        // marked, which changes nothing.
        // A mark that fails does not withhold the answer: the rotation is done, and a client
        // told 503 would retry with a token the failed mark may yet have spent for good, which
        // is reuse and ends its session. The mark is tried again in the background; until it
        // holds, a replay of the token answers with the same successor instead of revoking,
        // and the next rotation tells the two holders apart.
        if let Err(e) = self
            .use_once(ANSWERED, &hash, refreshed.mark_until, auth.now())
            .await
        {
            tracing::warn!(error = %e, "a refresh answer could not be marked answered; retrying in the background");
            self.mark_later(auth, hash, refreshed.mark_until);
        }
        Ok(refreshed.body)
    }

    /// Marks the token with `hash` answered in a task of its own, a few times over some seconds,
    /// after the request's own mark failed.
    fn mark_later(&self, auth: &OidcAuth, hash: [u8; 32], until: i64) {
        let Ok(permit) = Self::detach(&self.detached_refreshes) else {
            tracing::warn!("a refresh answer stays unmarked: too much work under way");
            return;
        };
        let auth = auth.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(broker) = auth.broker() else {
                return;
            };
            for pause in [1, 2, 4] {
                tokio::time::sleep(Duration::from_secs(pause)).await;
                if broker
                    .use_once(ANSWERED, &hash, until, auth.now())
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tracing::warn!("a refresh answer stays unmarked: the store did not take the mark");
        });
    }

    /// Starts the refresh of the token with `hash` in a task of its own, which lands it (takes
    /// it out of the map) when done. A client that goes away cuts neither the rotation between
    /// the store and the provider, whose rotated refresh token would then be lost and the
    /// session with it, nor the other requests waiting for the same refresh.
    fn take_off(
        auth: &OidcAuth,
        token: &str,
        hash: [u8; 32],
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Flight {
        let (sender, flight) = tokio::sync::watch::channel(None);
        let (auth, token, own) = (auth.clone(), token.to_owned(), flight.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Some(broker) = auth.broker() else {
                return;
            };
            let landing = Landing {
                broker,
                hash,
                flight: own,
            };
            let outcome = broker.refresh_once(&auth, &token, hash).await;
            // Out of the map before the outcome is sent: the requests already waiting receive
            // it, and one that comes after it, a retry of a failure above all, starts a
            // refresh of its own instead of being handed this one's answer.
            drop(landing);
            let _ = sender.send(Some(outcome));
        });
        flight
    }

    /// What the store found for a token of session `session_id`: a record of another session
    /// (written into the store, as the token was made for its own) counts as none.
    fn of_session(outcome: RotateOutcome, session_id: &str) -> RotateOutcome {
        match outcome {
            RotateOutcome::Rotated(record) | RotateOutcome::Spent(record)
                if record.session_id != session_id =>
            {
                tracing::warn!(
                    "a stored refresh token names another session than the token itself; it is refused"
                );
                RotateOutcome::NotFound
            }
            outcome => outcome,
        }
    }

    /// The successor of a broker refresh token, of the same session and made with the keys
    /// the token was made with (`keys`; the current ones for those of the client secret, see
    /// [`TokenKeys::moves_on`]): its random part is an HMAC of the token under a key
    /// derived from the at-rest key, which every instance sharing the store has. Whichever
    /// instance answers for a rotation answers the same successor, also while the at-rest key
    /// is being changed, and without the key it cannot be told from random.
    fn successor_of(&self, session_id: &str, token: &str, keys: &TokenKeys) -> String {
        let keys = if keys.moves_on {
            &self.token_keys
        } else {
            keys
        };
        let random = URL_SAFE_NO_PAD.encode(hmac::sign(&keys.successors, token.as_bytes()));
        Self::bind(session_id, &random, keys)
    }

    /// A refresh token of session `session_id` with the random part `random`: the session id,
    /// the random part and a tag (an HMAC of both under a key derived from the at-rest key).
    fn bind(session_id: &str, random: &str, keys: &TokenKeys) -> String {
        let body = format!("{session_id}{random}");
        let tag = hmac::sign(&keys.binding, body.as_bytes());
        format!("{body}{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]))
    }

    /// The session a refresh token was issued for, and the keys it was made with, when its tag
    /// shows this server made it: someone who can write the store but lacks the key cannot
    /// make a token for another's session, and a stored record is only taken for the session
    /// its token names.
    fn bound_session<'t>(&self, token: &'t str) -> Option<(&'t str, &TokenKeys)> {
        if token.len() != SESSION_ID_LEN + REFRESH_RANDOM_LEN + REFRESH_TAG_LEN || !token.is_ascii()
        {
            return None;
        }
        let (body, tag) = token.split_at(SESSION_ID_LEN + REFRESH_RANDOM_LEN);
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let keys = std::iter::once(&self.token_keys)
            .chain(&self.earlier_token_keys)
            .find(|keys| {
                let expected = hmac::sign(&keys.binding, body.as_bytes());
                subtle::ConstantTimeEq::ct_eq(&expected.as_ref()[..16], tag.as_slice()).into()
            })?;
        Some((&body[..SESSION_ID_LEN], keys))
    }

    async fn refresh_once(
        &self,
        auth: &OidcAuth,
        token: &str,
        hash: [u8; 32],
    ) -> Result<Refreshed, AuthError> {
        let store = self.store().await?;
        let now = auth.now();
        self.maybe_purge(&store, now);
        let Some((session_id, keys)) = self.bound_session(token) else {
            return Err(invalid_grant(
                "the refresh token is invalid, expired or revoked",
            ));
        };
        let successor = self.successor_of(session_id, token, keys);
        // Before the rotation: had its answer reached a request when this one came in? Then a
        // spent token is reuse. If not, this request is concurrent with the rotation that spent
        // it, on whichever instance, or that rotation failed before answering.
        let answered = self.marked(ANSWERED, &hash, now).await?;
        let outcome = store
            .rotate_refresh(&hash, &sha256(successor.as_bytes()), now)
            .await
            .map_err(store_error)?;
        let record = match Self::of_session(outcome, session_id) {
            // Spent, or live again although its rotation was answered to a request: a spend
            // undone after another request was answered with the successor (MongoDB undoes a
            // spend whose successor it could not store; the other backends roll back before
            // anyone can answer), or a row written back into the store. Either way the token
            // was presented again after its answer, which is reuse; and rotating it again
            // would keep it on record longer than its "answered" marker.
            RotateOutcome::Spent(record) | RotateOutcome::Rotated(record) if answered => {
                // As a revocation by the client: the session and the provider's refresh token
                // first, which could otherwise outlive the theft signal, then the family.
                self.end_session(auth, &store, &record.session_id).await?;
                self.revoke_family(&store, &record.family).await?;
                tracing::warn!(
                    "a spent broker refresh token was presented again; its session and whole family are revoked"
                );
                return Err(invalid_grant(
                    "the refresh token was already used; the session is revoked",
                ));
            }
            RotateOutcome::Rotated(record) => record,
            RotateOutcome::Spent(_) if self.marked(REVOKING, &hash, now).await? => {
                // Spent by its revocation, which ends the session next: nothing to answer.
                return Err(invalid_grant(
                    "the refresh token is invalid, expired or revoked",
                ));
            }
            RotateOutcome::Spent(record) => {
                let body = self.answer_spent(&store, &record, &successor, now).await?;
                // The spent token's record is kept until then (see `spent_until`).
                return Ok(Refreshed {
                    body,
                    mark_until: record.expires_at,
                });
            }
            RotateOutcome::NotFound => {
                // A token this server made (its tag shows it) but not on record: spent longer
                // ago than the store keeps spent tokens, which is reuse, or of a session that
                // has ended. Either way its session ends; an ended one changes nothing.
                if self.end_session(auth, &store, session_id).await? {
                    tracing::warn!(
                        "a broker refresh token no longer on record was presented while its session was live; the session is revoked"
                    );
                }
                return Err(invalid_grant(
                    "the refresh token is invalid, expired or revoked",
                ));
            }
        };
        let (mut session, mut profile, provider_refresh) =
            self.session_of(&store, &record, now).await?;
        if !provider_refresh.is_empty() {
            match auth
                .provider_token(vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", provider_refresh.clone()),
                ])
                .await
            {
                Ok(answer) => {
                    if let Some(claims) = self.refreshed_claims(auth, &answer, &session).await {
                        let scope = profile.get("scope").cloned();
                        profile = self.profile(&claims);
                        if let Some(scope) = answer
                            .get("scope")
                            .cloned()
                            .or(scope)
                            .filter(Value::is_string)
                        {
                            profile.insert("scope".into(), scope);
                        }
                    }
                    let kept = answer
                        .get("refresh_token")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .unwrap_or(&provider_refresh);
                    session.userinfo = Value::Object(profile.clone()).to_string();
                    // Sealed again either way: the claims it is bound to may have changed.
                    session.provider_refresh_token = self
                        .sessions
                        .seal(&session_row(&session), kept.as_bytes())?;
                    // Only while the session is there: a sign-out that deleted it while the
                    // provider answered stays done, and the provider's token rotated
                    // meanwhile is revoked like the one the sign-out saw.
                    if !Self::write_refreshed(&store, &session, now).await? {
                        self.revoke_at_provider(auth, &session);
                        tracing::info!("a broker session ended while it was being refreshed");
                        return Err(session_ended("the session ended; sign in again"));
                    }
                }
                // Only invalid_grant says the grant is gone (RFC 6749 section 5.2); any other
                // refusal (a client or request problem of this server) leaves the session.
                Err(e) if e.code() == Some("invalid_grant") => {
                    tracing::info!(error = ?e.code(), "the identity provider ended a session at refresh");
                    store
                        .delete_session(&session.id)
                        .await
                        .map_err(store_error)?;
                    return Err(session_ended(
                        "the session ended at the identity provider; sign in again",
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, code = ?e.code(), "identity provider did not refresh (unavailable, or refused other than invalid_grant); minting from the session's stored claims");
                }
            }
        }
        let body = self.answer(&profile, &session, &successor, now).await?;
        // The spent token stays on record until then, so its "answered" marker does too: a
        // replay finds either both or neither.
        Ok(Refreshed {
            body,
            mark_until: crate::store::spent_until(record.expires_at, now),
        })
    }

    /// The user's claims in a provider refresh answer, as a login reads them: those of the
    /// access token when it validates here, then those of the ID token (without the login's
    /// nonce), each only when its `sub` is the session's. `None` when neither gives any (an
    /// opaque access token and no ID token): the stored claims stay.
    async fn refreshed_claims(
        &self,
        auth: &OidcAuth,
        answer: &Map<String, Value>,
        session: &Session,
    ) -> Option<Map<String, Value>> {
        let mut claims = None::<Map<String, Value>>;
        if let Some(access) = answer.get("access_token").and_then(Value::as_str)
            && let Ok(token) = auth.validate_provider_token(access).await
            && token.sub() == session.subject
        {
            claims = Some(token.claims().clone());
        }
        if let Some(raw) = answer.get("id_token").and_then(Value::as_str) {
            match auth.validate_id_token_without_nonce(raw).await {
                Ok(identity) if identity.sub() == session.subject => {
                    claims
                        .get_or_insert_default()
                        .extend(identity.claims().clone());
                }
                Ok(_) => {
                    tracing::warn!(
                        "a refreshed ID token names another subject; the session's claims stay"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a refreshed ID token is not valid; the session's claims stay");
                }
            }
        }
        claims
    }

    /// Writes a refreshed session back; false when it is gone (signed out meanwhile). A store
    /// that is unavailable is tried again, within the time of one store call: the provider has
    /// already rotated its refresh token, which only this write keeps, and the rotation of ours
    /// is done, so a retry of the client would be answered from the stored claims without the
    /// provider and the session would refresh with the provider's spent token next time.
    async fn write_refreshed(
        store: &Arc<dyn Store>,
        session: &Session,
        now: i64,
    ) -> Result<bool, AuthError> {
        let attempts = async {
            let mut pauses = [250, 500, 1000, 2000].into_iter();
            loop {
                match store.update_session(session, now).await {
                    Ok(live) => return Ok(live),
                    Err(StoreError::Unavailable(e)) => match pauses.next() {
                        Some(pause) => {
                            tracing::warn!(error = %e, "a refreshed session was not written; trying again");
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                        None => return Err(StoreError::Unavailable(e)),
                    },
                    Err(e) => return Err(e),
                }
            }
        };
        // In all no longer than one store call: a database that stops answering still costs
        // the refresh one call's time, not one per attempt.
        match tokio::time::timeout(crate::store::OPERATION_TIMEOUT, attempts).await {
            Ok(written) => written.map_err(store_error),
            Err(_) => Err(store_error(StoreError::Unavailable(
                "the refreshed session could not be written in time".into(),
            ))),
        }
    }

    /// A spent refresh token presented before the rotation that spent it was answered to any
    /// request: this request is concurrent with that rotation, on this or another instance
    /// sharing the store, or the rotation failed before answering. It answers in the rotation's
    /// place, with the same successor and an access token from the session's stored claims,
    /// without asking the provider again. The request that receives it marks the token
    /// answered, as the rotation's own would; from then on the spent token is reuse, and the
    /// whole family is revoked (RFC 9700 section 4.14.2).
    async fn answer_spent(
        &self,
        store: &Arc<dyn Store>,
        record: &RefreshRecord,
        successor: &str,
        now: i64,
    ) -> Result<Value, AuthError> {
        let (session, profile, _) = self.session_of(store, record, now).await?;
        let answer = self.answer(&profile, &session, successor, now).await?;
        tracing::info!(
            "a refresh concurrent with the rotation of its token answers with the same successor"
        );
        Ok(answer)
    }

    /// Revokes the refresh family `family` in a task of its own, waiting for it as long as a
    /// store call may take: a request that stops waiting (its deadline, its client gone) does
    /// not cut the revocation short between its passes, which would leave a successor a
    /// concurrent rotation added live.
    async fn revoke_family(&self, store: &Arc<dyn Store>, family: &str) -> Result<(), AuthError> {
        let (store, family) = (Arc::clone(store), family.to_owned());
        let revocation = tokio::spawn(async move { store.revoke_family(&family).await });
        match tokio::time::timeout(crate::store::OPERATION_TIMEOUT, revocation).await {
            Ok(Ok(result)) => result.map_err(store_error),
            Ok(Err(_)) => Err(AuthError::unavailable("the revocation failed; try again")),
            Err(_) => Err(AuthError::unavailable(
                "the revocation is still under way; try again",
            )),
        }
    }

    /// The session a refresh token belongs to, with its stored profile and its provider
    /// refresh token, once that token opens: the profile is bound to it, so a row changed in
    /// the store is never minted from. A session that is gone ends the token's family; one
    /// that does not open is deleted.
    async fn session_of(
        &self,
        store: &Arc<dyn Store>,
        record: &RefreshRecord,
        now: i64,
    ) -> Result<(Session, Map<String, Value>, String), AuthError> {
        let Some(session) = store
            .get_session(&record.session_id, now)
            .await
            .map_err(store_error)?
        else {
            self.revoke_family(store, &record.family).await?;
            return Err(session_ended("the session has ended"));
        };
        let provider_refresh = match self
            .sessions
            .open(&session_row(&session), &session.provider_refresh_token)
        {
            Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "a session's provider refresh token cannot be read; the session ends");
                store
                    .delete_session(&session.id)
                    .await
                    .map_err(store_error)?;
                return Err(session_ended("the session cannot be resumed"));
            }
        };
        let profile = serde_json::from_str(&session.userinfo).unwrap_or_default();
        Ok((session, profile, provider_refresh))
    }

    /// The Token JSON of a refresh: a new access token for `profile` and the `successor`, both
    /// ending with the session at the latest (its expiry, bound to its sealed token, not the
    /// refresh record's, which a rotation shortens for the spent token).
    async fn answer(
        &self,
        profile: &Map<String, Value>,
        session: &Session,
        successor: &str,
        now: i64,
    ) -> Result<Value, AuthError> {
        let scope = profile
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or(&self.scopes)
            .to_owned();
        let (access, exp) = self
            .mint(
                profile,
                &[("sid", Value::String(session.id.clone()))],
                &self.audience,
                self.access_ttl.min(session.expires_at - now),
                now,
            )
            .await?;
        Ok(token_json(
            &access,
            exp,
            successor,
            session.expires_at,
            &scope,
            now,
        ))
    }

    /// Remembers the polling interval and expiry of a device code this server handed out. With
    /// [`MAX_TRACKED_DEVICES`] live codes remembered (anyone can start device flows), the one
    /// nearest its expiry makes room: the newest code is paced, whoever filled the table, and
    /// a code no longer remembered is left to the provider's own pacing.
    pub(crate) fn track_device(&self, device_code: &str, interval: i64, expires_in: i64, now: i64) {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if devices.len() >= MAX_TRACKED_DEVICES {
            devices.retain(|_, d| d.expires_at > now);
        }
        if devices.len() >= MAX_TRACKED_DEVICES {
            let nearest = devices
                .iter()
                .min_by_key(|(_, d)| d.expires_at)
                .map(|(key, _)| *key);
            if let Some(key) = nearest {
                devices.remove(&key);
            }
        }
        devices.insert(
            sha256(device_code.as_bytes()),
            DevicePoll {
                interval: interval.clamp(1, MAX_DEVICE_SECONDS),
                expires_at: now.saturating_add(expires_in.clamp(1, MAX_DEVICE_SECONDS)),
                last_poll: None,
                slowed_from: None,
                provider_hold: i64::MIN,
                held_for: 0,
            },
        );
    }

    /// Checks the pace of a device poll before the provider is asked: more than
    /// [`DEVICE_POLL_GRACE`] before the interval has passed is `slow_down` (and the interval
    /// grows by 5 s, RFC 8628 section 3.5), past expiry `expired_token`.
    ///
    /// The first poll after a `slow_down` may keep the gap from before it: py-oidc-auth-client
    /// works out its sleep before it reads the answer, so it sleeps the old interval once more
    /// and only then the grown one. Holding it to the grown gap at once would answer that poll
    /// `slow_down` too, and every later one, until the code expired. A client that keeps
    /// polling too fast is still slowed down at every poll.
    ///
    /// A poll that keeps the pace but comes before the provider's own grown interval has
    /// passed (see [`device_slowed`](Self::device_slowed)) is `authorization_pending` without
    /// asking the provider, which would take it for polling too fast again.
    pub(crate) fn pace_device_poll(&self, device_code: &str, now: i64) -> Result<(), AuthError> {
        let key = sha256(device_code.as_bytes());
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let Some(poll) = devices.get_mut(&key) else {
            return Ok(());
        };
        if now >= poll.expires_at {
            devices.remove(&key);
            return Err(AuthError::oauth(
                "expired_token",
                "the device code has expired",
            ));
        }
        let required = poll.slowed_from.take().unwrap_or(poll.interval);
        // A last poll "after" now was made before the clock was set back: no poll is early
        // for it, or a step back would slow every poll down until the clock caught up.
        if let Some(last) = poll.last_poll
            && last <= now
            && now < last.saturating_add((required - DEVICE_POLL_GRACE).max(1))
        {
            poll.slow_down();
            poll.last_poll = Some(now);
            return Err(AuthError::oauth(
                "slow_down",
                "polling faster than the interval",
            ));
        }
        poll.last_poll = Some(now);
        if now < poll.provider_hold && poll.provider_hold.saturating_sub(now) <= poll.held_for {
            return Err(AuthError::oauth(
                "authorization_pending",
                "the authorization is still pending",
            ));
        }
        Ok(())
    }

    /// The provider asked the client to slow down, or could not be asked (the answer is then
    /// `slow_down` too): the interval grows here as well, and no poll is passed on to the
    /// provider before the grown interval has passed, or the wait the provider asked for
    /// (`Retry-After`, at most [`MAX_DEVICE_SECONDS`]) if that is longer.
    pub(crate) fn device_slowed(&self, device_code: &str, now: i64, wait: Option<u64>) {
        let key = sha256(device_code.as_bytes());
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(poll) = devices.get_mut(&key) {
            poll.slow_down();
            let wait = wait.map_or(0, |w| i64::try_from(w).unwrap_or(MAX_DEVICE_SECONDS));
            poll.held_for = poll.interval.max(wait.min(MAX_DEVICE_SECONDS));
            poll.provider_hold = now.saturating_add(poll.held_for);
        }
    }

    /// A login transaction (its id) redeemed: once across the instances sharing the store,
    /// remembered until the transaction expires.
    pub(crate) async fn redeem_login(
        &self,
        transaction: &[u8],
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        self.use_once(b"login transaction ", transaction, expires_at, now)
            .await?
            .then_some(())
            .ok_or_else(|| invalid_grant("the login state is invalid, expired or already used"))
    }

    /// A device code redeemed successfully: it is redeemed once, across instances.
    pub(crate) async fn redeem_device_code(
        &self,
        device_code: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let until = now.saturating_add(self.device_ttl);
        let first = self
            .use_once(b"device code ", device_code.as_bytes(), until, now)
            .await?;
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sha256(device_code.as_bytes()));
        first
            .then_some(())
            .ok_or_else(|| invalid_grant("the device code was already used"))
    }

    /// Whether `value` has a live marker in the namespace `label` (see [`use_once`]), on any
    /// instance: for the refresh token with hash `value`, whether its rotation has been
    /// answered to a request ([`ANSWERED`]) or its revocation has begun ([`REVOKING`]). A read,
    /// which leaves nothing behind, so any request may ask.
    ///
    /// [`use_once`]: Self::use_once
    async fn marked(&self, label: &[u8], value: &[u8], now: i64) -> Result<bool, AuthError> {
        let store = self.store().await?;
        store
            .is_consumed(&sha256(&[label, value].concat()), now)
            .await
            .map_err(store_error)
    }

    /// Whether this is the first use of `value` (in the namespace `label`) across the
    /// instances sharing the store; the marker, a SHA-256, is kept until `until`.
    async fn use_once(
        &self,
        label: &[u8],
        value: &[u8],
        until: i64,
        now: i64,
    ) -> Result<bool, AuthError> {
        let key = sha256(&[label, value].concat());
        let store = self.store().await?;
        let first = store
            .consume_once(&key, until, now)
            .await
            .map_err(store_error)?;
        self.maybe_purge(&store, now);
        Ok(first)
    }
}

/// The session is gone: 401 `invalid_grant`, so the client signs in again.
fn session_ended(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidToken, description).with_code("invalid_grant")
}

/// The embedded default: a SQLite file under the platform data directory.
#[cfg(feature = "sqlite")]
async fn default_store() -> Result<Arc<dyn Store>, StoreError> {
    let path = crate::store::default_sqlite_path();
    tracing::info!(path = %path.display(), "broker state in the default SQLite file");
    let store = crate::store::sqlite::SqliteStore::open(&path).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// Without SQLite compiled in and no store URL: memory, with a warning.
#[cfg(not(feature = "sqlite"))]
async fn default_store() -> Result<Arc<dyn Store>, StoreError> {
    tracing::warn!(
        "broker state is kept in memory (no store URL, SQLite not compiled in): it is lost at restart and not shared between instances"
    );
    Ok(Arc::new(crate::store::memory::MemoryStore::new()))
}

/// The claims of a minted token taken from the provider's: identity, names, email, and the
/// roles and groups flattened into `roles` (groups are kept as `groups` too).
///
/// Of `resource_access` only the roles held in `clients` are taken: a provider lists there the
/// roles of every client the user has any in, and `admin` of an unrelated client must not
/// become `admin` of the services that trust the minted token. The token's top-level `roles`
/// (those of the audience it was issued to) are taken only with `own_roles`.
pub(crate) fn profile_of(
    claims: &Map<String, Value>,
    clients: &[&str],
    own_roles: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    for name in [
        "sub",
        "preferred_username",
        "email",
        "email_verified",
        "name",
        "given_name",
        "family_name",
        "scope",
    ] {
        if let Some(value) = claims.get(name).filter(|v| !v.is_null()) {
            out.insert(name.to_owned(), value.clone());
        }
    }
    let mut roles: Vec<String> = roles_of(claims, own_roles, Some(clients))
        .into_iter()
        .map(str::to_owned)
        .collect();
    let groups: Vec<String> = groups_of(claims).into_iter().map(str::to_owned).collect();
    for group in &groups {
        if !roles.contains(group) {
            roles.push(group.clone());
        }
    }
    out.insert("roles".into(), json!(roles));
    if !groups.is_empty() {
        out.insert("groups".into(), json!(groups));
    }
    out
}

fn token_json(
    access: &str,
    expires: i64,
    refresh: &str,
    refresh_expires: i64,
    scope: &str,
    now: i64,
) -> Value {
    json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires": expires,
        "expires_in": (expires - now).max(0),
        "refresh_token": refresh,
        "refresh_expires": refresh_expires,
        "refresh_expires_in": (refresh_expires - now).max(0),
        "scope": scope,
    })
}

/// A broker-mode configuration for the unit tests: a confidential client of a provider that is
/// never reached, minting for audience `api`.
#[cfg(test)]
fn test_config() -> OidcConfig {
    OidcConfig::builder()
        .discovery_url("https://idp.example/.well-known/openid-configuration")
        .client_id("app")
        .client_secret("secret")
        .broker_mode(true)
        .broker_audience("api")
        .build()
        .unwrap_or_else(|e| panic!("valid configuration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refresh token names its session under a tag of the binding key: changing the session
    /// id, the random part or the tag, or a token of another key, is no token of this server.
    /// A token made under a previous key still is, and its successor is made with that key, so
    /// that instances before and after a key change answer a rotation with the same successor.
    #[tokio::test]
    async fn refresh_tokens_are_bound_to_their_session() {
        const OLD: &str = "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleSE=";
        const NEW: &str = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=";
        let broker_with = |key: &str, previous: &[&str]| {
            let config = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
                .broker_mode(true)
                .broker_audience("api")
                .encryption_key(key)
                .previous_encryption_keys(previous.iter().map(|k| (*k).to_owned()))
                .build()
                .unwrap_or_else(|e| panic!("valid configuration: {e}"));
            Broker::new(&config, None, Arc::new(crate::clock::SystemClock))
        };
        let session_of = |broker: &Broker, token: &str| {
            broker.bound_session(token).map(|(sid, _)| sid.to_owned())
        };
        // What an instance answers for a rotation of `token`.
        let successor = |broker: &Broker, token: &str| {
            broker
                .bound_session(token)
                .map(|(sid, keys)| broker.successor_of(sid, token, keys))
        };
        let old = broker_with(OLD, &[]);
        let sid = "A".repeat(SESSION_ID_LEN);
        let token = Broker::bind(&sid, &"r".repeat(REFRESH_RANDOM_LEN), &old.token_keys);
        assert_eq!(session_of(&old, &token), Some(sid.clone()));
        let next = successor(&old, &token).unwrap_or_default();
        assert_ne!(next, token);
        assert_eq!(session_of(&old, &next), Some(sid.clone()));
        let change = |at: usize| {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'B' { b'C' } else { b'B' };
            String::from_utf8(bytes).unwrap_or_default()
        };
        for at in [0, SESSION_ID_LEN, token.len() - 2] {
            assert_eq!(session_of(&old, &change(at)), None, "changed at {at}");
        }
        for wrong in ["", "x", &token[1..], &format!("{token}A")] {
            assert_eq!(session_of(&old, wrong), None, "{wrong:?}");
        }
        let new = broker_with(NEW, &[]);
        assert_eq!(session_of(&new, &token), None);
        // Both rounds of a key change, and the instance not yet changed, agree.
        let first_round = broker_with(OLD, &[NEW]);
        let second_round = broker_with(NEW, &[OLD]);
        for broker in [&first_round, &second_round] {
            assert_eq!(session_of(broker, &token), Some(sid.clone()));
            assert_eq!(successor(broker, &token).as_ref(), Some(&next));
        }
        // A session started after the change: its tokens are the new key's.
        let started = Broker::bind(
            &sid,
            &"s".repeat(REFRESH_RANDOM_LEN),
            &second_round.token_keys,
        );
        assert_eq!(session_of(&old, &started), None);
        assert_eq!(session_of(&first_round, &started), Some(sid.clone()));
        assert_eq!(successor(&first_round, &started), successor(&new, &started));

        // From the key derived from the client secret to a first encryption key, when the
        // deployer keeps that key: the successor is the encryption key's, so a later change of
        // the secret ends nothing.
        let with_secret = |key: Option<&str>, previous_from_secret: bool| {
            let mut builder = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
                .client_secret("the-secret")
                .broker_mode(true)
                .broker_audience("api");
            if let Some(key) = key {
                builder = builder
                    .encryption_key(key)
                    .previous_key_from_client_secret(previous_from_secret);
            }
            let config = builder
                .build()
                .unwrap_or_else(|e| panic!("valid configuration: {e}"));
            Broker::new(&config, None, Arc::new(crate::clock::SystemClock))
        };
        let keyless = with_secret(None, false);
        let keyed = with_secret(Some(NEW), true);
        let token = Broker::bind(&sid, &"r".repeat(REFRESH_RANDOM_LEN), &keyless.token_keys);
        assert_eq!(session_of(&keyed, &token), Some(sid.clone()));
        let next = successor(&keyed, &token).unwrap_or_default();
        assert_eq!(session_of(&new, &next), Some(sid.clone()));
        assert_eq!(session_of(&keyless, &next), None);
        // Not kept, the key derived from the secret tags nothing: whoever knows the secret
        // cannot name a session with a made-up refresh token.
        let strict = with_secret(Some(NEW), false);
        assert_eq!(session_of(&strict, &token), None);
    }

    #[test]
    fn profiles_flatten_roles_and_groups() {
        let claims = json!({
            "sub": "u1", "preferred_username": "alice", "email": "a@example.com",
            "realm_access": {"roles": ["admin"]},
            "resource_access": {"app": {"roles": ["reader"]}},
            "groups": ["staff", "admin"], "nonce": "n", "at_hash": "x"
        });
        let profile = profile_of(claims.as_object().unwrap_or(&Map::new()), &["app"], true);
        assert_eq!(profile["roles"], json!(["admin", "reader", "staff"]));
        assert_eq!(profile["groups"], json!(["staff", "admin"]));
        assert_eq!(profile["preferred_username"], "alice");
        assert!(profile.get("nonce").is_none());
        assert!(profile.get("at_hash").is_none());
    }

    #[test]
    fn store_outages_are_503_and_refusals_400() {
        assert_eq!(
            store_error(StoreError::Unavailable("down".into())).status(),
            503
        );
        assert_eq!(
            store_error(StoreError::Rejected("long".into())).status(),
            400
        );
        assert_eq!(
            store_error(StoreError::Corrupt("schema".into())).status(),
            503
        );
        let e = store_error(StoreError::Unavailable("password=hunter2".into()));
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn provider_stated_device_times_cannot_overflow() {
        let config = crate::config::OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration")
            .client_id("app")
            .broker_mode(true)
            .broker_audience("api")
            .build();
        let Ok(config) = config else {
            panic!("valid configuration");
        };
        let broker = Broker::new(&config, None, Arc::new(crate::clock::SystemClock));
        assert_eq!(
            crate::clock::secs(Duration::MAX),
            100 * 365 * 24 * 3600,
            "configured lifetimes stop at a century, so sums with the time cannot overflow"
        );
        let now = i64::MAX - 10;
        broker.track_device("code", i64::MAX, i64::MAX, now);
        assert_paced(&broker, "code", now);
    }

    /// Two polls of `code` at once: the first passes, the second is `slow_down`.
    fn assert_paced(broker: &Broker, code: &str, now: i64) {
        assert!(broker.pace_device_poll(code, now).is_ok());
        let again = broker.pace_device_poll(code, now);
        assert_eq!(
            again
                .err()
                .and_then(|e| e.code().map(str::to_owned))
                .as_deref(),
            Some("slow_down")
        );
    }

    /// A table of device codes filled by someone starting device flows does not turn pacing off:
    /// the newest code is still paced (`slow_down` to a poll at once), the code nearest its
    /// expiry made room, and the table stays at its bound.
    #[test]
    fn a_full_device_table_still_paces_the_newest_code() {
        let broker = Broker::new(&test_config(), None, Arc::new(crate::clock::SystemClock));
        let now = 1_000_000;
        for i in 0..MAX_TRACKED_DEVICES {
            let expires_in = 600 + i64::try_from(i).unwrap_or(0);
            broker.track_device(&format!("flood-{i}"), 5, expires_in, now);
        }
        broker.track_device("newest", 5, 600, now + 1);
        assert_paced(&broker, "newest", now + 1);
        let devices = broker.devices.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(devices.len(), MAX_TRACKED_DEVICES);
        assert!(
            !devices.contains_key(&sha256(b"flood-0")),
            "the code nearest its expiry made room"
        );
        assert!(devices.contains_key(&sha256(b"flood-1")));
    }

    /// Work detached from its request is bounded, refreshes and revocations each: with every
    /// permit of one taken, that work answers 503 at once while the other goes on, and it
    /// works again once permits come back.
    #[tokio::test]
    async fn detached_work_is_bounded() {
        let config = test_config();
        let auth = OidcAuth::builder(config)
            .store(Arc::new(crate::store::memory::MemoryStore::new()))
            .build();
        let Some(broker) = auth.broker() else {
            panic!("broker mode");
        };
        let take = |pool| {
            (0..MAX_DETACHED)
                .filter_map(|_| Broker::detach(pool).ok())
                .collect::<Vec<_>>()
        };
        // A token as this server makes them, of a session the store does not know.
        let made_up = &Broker::bind(
            &"s".repeat(SESSION_ID_LEN),
            &"r".repeat(REFRESH_RANDOM_LEN),
            &broker.token_keys,
        );
        // Revocations use up theirs: refreshes go on.
        let revocations = take(&broker.detached_revocations);
        assert_eq!(revocations.len(), MAX_DETACHED);
        let refused = broker.revoke(&auth, made_up).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503));
        // A token this server did not make takes no permit: nothing to revoke, at once.
        assert!(broker.revoke(&auth, "not-made-here").await.is_ok());
        let unknown = broker.refresh(&auth, made_up).await.err();
        assert_eq!(unknown.map(|e| e.status()), Some(400));
        // And the other way round.
        let refreshes = take(&broker.detached_refreshes);
        assert_eq!(refreshes.len(), MAX_DETACHED);
        let refused = broker.refresh(&auth, made_up).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503));
        let unknown = broker.refresh(&auth, "not-made-here").await.err();
        assert_eq!(unknown.map(|e| e.status()), Some(400));
        drop(revocations);
        assert!(broker.revoke(&auth, made_up).await.is_ok());
        drop(refreshes);
        let unknown = broker.refresh(&auth, made_up).await.err();
        assert_eq!(
            unknown.and_then(|e| e.code().map(str::to_owned)).as_deref(),
            Some("invalid_grant")
        );
        assert!(broker.revoke(&auth, made_up).await.is_ok());
    }

    /// A refresh whose task never ran (its request was dropped and its runtime shut down
    /// before the task was polled, as when an actix-web worker stops) leaves its flight in the
    /// map with no one to land it. The next refresh of that token starts its own instead of
    /// being answered 503 by the dead one, for as long as the process lives.
    #[test]
    fn a_refresh_whose_task_never_ran_does_not_answer_for_later_ones() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("a runtime: {e}"))
        };
        let auth = OidcAuth::builder(test_config())
            .store(Arc::new(crate::store::memory::MemoryStore::new()))
            .build();
        let Some(broker) = auth.broker() else {
            panic!("broker mode");
        };
        // A token as this server makes them, of a session the store does not know: its refresh
        // runs, and answers 400.
        let made_up = Broker::bind(
            &"s".repeat(SESSION_ID_LEN),
            &"r".repeat(REFRESH_RANDOM_LEN),
            &broker.token_keys,
        );
        let first = runtime();
        first.block_on(async {
            let mut refresh = std::pin::pin!(broker.refresh(&auth, &made_up));
            let pending = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(refresh.as_mut().poll(cx).is_pending())
            })
            .await;
            assert!(pending, "the refresh waits for its task");
        });
        drop(first);
        let stale = broker.flights.lock().map(|f| f.len()).unwrap_or_default();
        assert_eq!(stale, 1, "the dead flight is still in the map");
        for _ in 0..2 {
            let answer = runtime().block_on(broker.refresh(&auth, &made_up)).err();
            assert_eq!(
                answer.map(|e| (e.status(), e.code().map(str::to_owned))),
                Some((400, Some("invalid_grant".to_owned()))),
                "the refresh ran"
            );
        }
        let left = broker.flights.lock().map(|f| f.len()).unwrap_or_default();
        assert_eq!(left, 0, "every flight landed");
    }

    /// A store that is down fails every request that reaches it: its failures are logged at
    /// their level once per ten seconds and at DEBUG in between, per kind; a clock set back
    /// logs at once. (The levels themselves are not captured here: `tracing` caches per call
    /// site whether anyone listens, for the whole process, and tests run in parallel.)
    #[test]
    fn store_failures_are_logged_at_their_level_once_per_ten_seconds() {
        let last = AtomicI64::new(i64::MIN);
        let due: Vec<bool> = [1_000, 1_001, 1_009, 1_010, 1_011, 900, 905, 910]
            .into_iter()
            .map(|now| log_due(&last, now))
            .collect();
        assert_eq!(due, [true, false, false, true, false, true, false, true]);
        // Each kind has its own time, and every failure is still answered.
        let logged_at = [AtomicI64::new(i64::MIN), AtomicI64::new(i64::MIN)];
        for now in [1_000, 1_001] {
            let down = store_error_logged(StoreError::Unavailable("down".into()), &logged_at, now);
            assert_eq!(down.status(), 503);
            let corrupt = store_error_logged(StoreError::Corrupt("row".into()), &logged_at, now);
            assert_eq!(corrupt.status(), 503);
        }
        let times = logged_at.map(|at| at.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(times, [1_000, 1_000], "both kinds logged once, at 1 000");
    }

    #[test]
    fn an_ended_session_is_401_invalid_grant() {
        let e = session_ended("gone");
        assert_eq!(e.status(), 401);
        assert_eq!(e.code(), Some("invalid_grant"));
    }

    /// A [`MemoryStore`](crate::store::memory::MemoryStore) that counts purges and can fail
    /// them.
    struct PurgeProbe {
        inner: crate::store::memory::MemoryStore,
        purges: std::sync::atomic::AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Store for PurgeProbe {
        delegate! {
            migrate() -> ();
            put_session(session: &Session) -> ();
            update_session(session: &Session, now: i64) -> bool;
            get_session(id: &str, now: i64) -> Option<Session>;
            delete_session(id: &str) -> Option<Session>;
            insert_refresh(record: &RefreshRecord) -> ();
            rotate_refresh(old: &[u8; 32], new: &[u8; 32], now: i64) -> RotateOutcome;
            revoke_family(family: &str) -> ();
            list_keys() -> Vec<crate::store::StoredKey>;
            insert_first_key(key: &crate::store::StoredKey, now: i64) -> bool;
            insert_key(key: &crate::store::StoredKey) -> ();
            delete_key(kid: &str) -> ();
            put_peer_jwks(issuer: &str, jwks: &str, fetched_at: i64) -> ();
            get_peer_jwks(issuer: &str) -> Option<(String, i64)>;
            consume_once(key: &[u8; 32], expires_at: i64, now: i64) -> bool;
            is_consumed(key: &[u8; 32], now: i64) -> bool;
        }

        fn purge_expired(&self, now: i64) -> crate::store::StoreFuture<'_, u64> {
            self.purges
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Box::pin(async {
                    Err(StoreError::Unavailable("refused by the test".into()))
                });
            }
            self.inner.purge_expired(now)
        }
    }

    /// A broker on a [`PurgeProbe`].
    fn purge_probe_broker() -> (Arc<PurgeProbe>, Broker) {
        let probe = Arc::new(PurgeProbe {
            inner: crate::store::memory::MemoryStore::new(),
            purges: std::sync::atomic::AtomicUsize::new(0),
            fail: std::sync::atomic::AtomicBool::new(false),
        });
        let broker = Broker::new(
            &test_config(),
            Some(probe.clone()),
            Arc::new(crate::clock::SystemClock),
        );
        (probe, broker)
    }

    /// Writes faster than [`PURGE_AFTER_WRITES`] an hour (a flood of error callbacks, each
    /// spending a login handle with a marker) are purged within the hour: after that many
    /// writes, a minute or more after the last purge; not sooner than the minute, however many.
    #[tokio::test]
    async fn many_writes_make_a_purge_due_within_the_hour() {
        let (probe, broker) = purge_probe_broker();
        let purges = || {
            let probe = probe.clone();
            async move {
                for _ in 0..50 {
                    tokio::task::yield_now().await;
                }
                probe.purges.load(std::sync::atomic::Ordering::SeqCst)
            }
        };
        let start = 1_800_000_000;
        let mut handle = 0u32;
        let mut spend = async |count: u64, now: i64| {
            for _ in 0..count {
                handle += 1;
                let id = handle.to_be_bytes();
                let spent = broker.redeem_login(&id, now + 600, now).await;
                spent.unwrap_or_else(|e| panic!("marker {handle}: {e}"));
            }
        };
        spend(1, start).await;
        assert_eq!(purges().await, 1, "the first write purges");
        spend(PURGE_AFTER_WRITES - 1, start + PURGE_RETRY).await;
        assert_eq!(purges().await, 1, "not before the count is reached");
        spend(1, start + PURGE_RETRY).await;
        assert_eq!(purges().await, 2, "at the count, a minute after the last");
        spend(2 * PURGE_AFTER_WRITES, start + 2 * PURGE_RETRY - 1).await;
        assert_eq!(purges().await, 2, "not within the minute, however many");
        spend(1, start + 2 * PURGE_RETRY).await;
        assert_eq!(purges().await, 3, "past the count, once the minute is up");
    }

    /// Expired rows are purged on the back of any write of broker state, single-use markers
    /// included (a flood of login handles spent by error callbacks, with no one signing in,
    /// has its markers purged all the same), at most once an hour; a purge that failed is
    /// tried again a minute later, not an hour; and a clock set back does not stop purges.
    #[tokio::test]
    async fn purges_follow_every_write_and_come_again_soon_after_a_failure() {
        let (probe, broker) = purge_probe_broker();
        let purges_reach = |expected: usize| {
            let probe = probe.clone();
            async move {
                for _ in 0..200 {
                    if probe.purges.load(std::sync::atomic::Ordering::SeqCst) >= expected {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                probe.purges.load(std::sync::atomic::Ordering::SeqCst)
            }
        };
        let start = 1_800_000_000;
        let mut handle = 0u32;
        let mut spend = async |now: i64| {
            handle += 1;
            broker
                .redeem_login(&handle.to_be_bytes(), now + 600, now)
                .await
                .unwrap_or_else(|e| panic!("marker {handle}: {e}"));
        };
        spend(start).await;
        assert_eq!(purges_reach(1).await, 1, "the first marker purges");
        spend(start + 10).await;
        spend(start + 3599).await;
        assert_eq!(purges_reach(2).await, 1, "not again within the hour");
        probe.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        spend(start + 3600).await;
        assert_eq!(purges_reach(2).await, 2, "due after an hour");
        // Let the failed purge's task see its failure.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        spend(start + 3600 + PURGE_RETRY - 1).await;
        assert_eq!(purges_reach(3).await, 2, "not before the retry time");
        probe.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        spend(start + 3600 + PURGE_RETRY).await;
        assert_eq!(
            purges_reach(3).await,
            3,
            "tried again a minute after the failure"
        );
        spend(start + 3600 + PURGE_RETRY + 10).await;
        assert_eq!(
            purges_reach(4).await,
            3,
            "succeeded: not again within the hour"
        );
        spend(start + 3600 + PURGE_RETRY - 300).await;
        assert_eq!(
            purges_reach(4).await,
            3,
            "a time a little before the last purge's is no clock set back"
        );
        spend(start - 10).await;
        assert_eq!(
            purges_reach(4).await,
            4,
            "a clock set back makes a purge due"
        );
    }
}
