//! The identity provider as seen from the server: its discovery document and its JWKS, both
//! cached, refreshed in the background, and fetched with bounded time and size.

mod http;
mod keys;
mod slot;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::MutexGuard;
use url::Url;

use crate::algorithm::Algorithm;
use crate::clock::{Clock, secs};
use crate::config::OidcConfig;
use crate::error::AuthError;
use crate::secret::Issuer;

pub(crate) use http::{FetchError, HttpClient, ProviderClient};
pub(crate) use keys::VerifyingKey;
pub(crate) use slot::{Fetched, Gate, Refresh, Slot};

/// The parts of the discovery document this crate uses.
///
/// Only `issuer` must be usable, and `jwks_uri` unless one is configured: bearer validation
/// needs nothing else. Any other field the document spells wrong (an endpoint that is not an
/// absolute URL, a flag that is not a boolean) is taken as absent, with a warning naming it,
/// so that one broken field does not stop every token from validating; the flow that needs
/// the endpoint then answers as with a provider that has none.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "DiscoveryFields")]
pub(crate) struct Discovery {
    /// The provider's issuer identifier.
    pub(crate) issuer: String,
    /// Where the provider publishes its signing keys.
    pub(crate) jwks_uri: Option<Url>,
    /// The authorization endpoint.
    pub(crate) authorization_endpoint: Option<Url>,
    /// The token endpoint.
    pub(crate) token_endpoint: Option<Url>,
    /// The userinfo endpoint.
    pub(crate) userinfo_endpoint: Option<Url>,
    /// The RP-initiated logout endpoint.
    pub(crate) end_session_endpoint: Option<Url>,
    /// The token revocation endpoint (RFC 7009).
    pub(crate) revocation_endpoint: Option<Url>,
    /// The device authorization endpoint (RFC 8628).
    pub(crate) device_authorization_endpoint: Option<Url>,
    /// Whether the provider returns `iss` in authorization responses (RFC 9207).
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

/// The discovery document as sent: the issuer is checked here, the other fields when they
/// become a [`Discovery`].
#[derive(Deserialize)]
struct DiscoveryFields {
    issuer: String,
    #[serde(default)]
    jwks_uri: Option<Value>,
    #[serde(default)]
    authorization_endpoint: Option<Value>,
    #[serde(default)]
    token_endpoint: Option<Value>,
    #[serde(default)]
    userinfo_endpoint: Option<Value>,
    #[serde(default)]
    end_session_endpoint: Option<Value>,
    #[serde(default)]
    revocation_endpoint: Option<Value>,
    #[serde(default)]
    device_authorization_endpoint: Option<Value>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<Value>,
}

impl From<DiscoveryFields> for Discovery {
    fn from(doc: DiscoveryFields) -> Self {
        let flag = match doc.authorization_response_iss_parameter_supported {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => flag,
            Some(_) => {
                tracing::warn!(
                    field = "authorization_response_iss_parameter_supported",
                    "a field of the discovery document is not a boolean; it is taken as absent"
                );
                false
            }
        };
        Discovery {
            issuer: doc.issuer,
            jwks_uri: endpoint("jwks_uri", doc.jwks_uri),
            authorization_endpoint: endpoint("authorization_endpoint", doc.authorization_endpoint),
            token_endpoint: endpoint("token_endpoint", doc.token_endpoint),
            userinfo_endpoint: endpoint("userinfo_endpoint", doc.userinfo_endpoint),
            end_session_endpoint: endpoint("end_session_endpoint", doc.end_session_endpoint),
            revocation_endpoint: endpoint("revocation_endpoint", doc.revocation_endpoint),
            device_authorization_endpoint: endpoint(
                "device_authorization_endpoint",
                doc.device_authorization_endpoint,
            ),
            authorization_response_iss_parameter_supported: flag,
        }
    }
}

/// An optional endpoint of the discovery document: absent when it is not there, `null`, or
/// not an absolute `https` or `http` URL (logged, by name only: the value is the provider's
/// and may be large). Another scheme (`javascript:`, `data:`, `file:`) would be a login
/// redirect no browser should follow, or a request nothing can send.
fn endpoint(field: &'static str, value: Option<Value>) -> Option<Url> {
    let url = match value? {
        Value::Null => return None,
        Value::String(text) => Url::parse(&text)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http")),
        _ => None,
    };
    if url.is_none() {
        tracing::warn!(
            field,
            "an endpoint of the discovery document is not an absolute http(s) URL; it is taken as absent"
        );
    }
    url
}

impl Discovery {
    /// The first endpoint that is plain `http` on a host that is not loopback, by name; the
    /// `jwks_uri` only when it is `used` (no configured one replaces it).
    fn insecure_endpoint(&self, jwks_uri_used: bool) -> Option<(&'static str, &Url)> {
        [
            ("jwks_uri", self.jwks_uri.as_ref().filter(|_| jwks_uri_used)),
            (
                "authorization_endpoint",
                self.authorization_endpoint.as_ref(),
            ),
            ("token_endpoint", self.token_endpoint.as_ref()),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("end_session_endpoint", self.end_session_endpoint.as_ref()),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            (
                "device_authorization_endpoint",
                self.device_authorization_endpoint.as_ref(),
            ),
        ]
        .into_iter()
        .find_map(|(name, url)| {
            url.filter(|u| crate::config::is_insecure_http(u))
                .map(|u| (name, u))
        })
    }
}

/// The keys of one JWKS, parsed once.
#[derive(Debug)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// How many published keys sharing one `kid` a signature is tried against at most. A `kid`
/// should name one key, but a provider that reuses one during a rotation publishes the old and
/// the new key under it; trying both keeps the new key's tokens valid, and the bound keeps a
/// forged token from costing more than a few checks.
const MAX_KEYS_PER_KID: usize = 3;

impl KeySet {
    pub(crate) fn parse(
        doc: &Value,
        accepted: &[Algorithm],
        max_keys: usize,
    ) -> Result<Self, FetchError> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(FetchError::NotJson)?;
        // Entries that are not usable signing keys (encryption keys, other algorithms) do not
        // count against the limit, so that they cannot hide the signing keys after them; the
        // document's size limit bounds how many there are.
        let mut keys = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if keys.len() == max_keys {
                tracing::warn!(
                    max_keys,
                    unread = entries.len() - index,
                    "JWKS entries past the allowed number of usable keys were not read"
                );
                break;
            }
            let Some(jwk) = entry.as_object() else {
                continue;
            };
            match VerifyingKey::from_jwk(jwk, accepted) {
                Ok(key) => keys.push(key),
                Err(reason) => tracing::debug!(%reason, "skipped a JWKS key"),
            }
        }
        Ok(Self { keys })
    }

    /// What this key set alone says of a signature: `None` when it has no key for the token,
    /// so that only a refresh can decide.
    ///
    /// A token with a `kid` is checked against the keys with that `kid` that fit its algorithm
    /// (at most [`MAX_KEYS_PER_KID`]); one without is accepted only when exactly one key fits,
    /// refused rather than guessed when several do.
    pub(crate) fn verdict(&self, signed: Signed<'_>) -> Option<Result<(), AuthError>> {
        let verifies = |key: &&aws_lc_rs::signature::ParsedPublicKey| {
            key.verify_sig(signed.message, signed.signature).is_ok()
        };
        let mut fitting = self.keys.iter().filter_map(|k| {
            (signed.kid.is_none() || k.kid.as_deref() == signed.kid)
                .then(|| k.for_alg(signed.alg))?
        });
        let first = fitting.next()?;
        let verified = match signed.kid {
            Some(_) => verifies(&first) || fitting.take(MAX_KEYS_PER_KID - 1).any(|k| verifies(&k)),
            None if fitting.next().is_some() => return Some(Err(ambiguous())),
            None => verifies(&first),
        };
        Some(if verified {
            Ok(())
        } else {
            Err(AuthError::invalid("the token signature is invalid"))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether some key of `previous` is not in this set any more (removed, or its kid now
    /// names other key material).
    pub(crate) fn withdraws_from(&self, previous: &KeySet) -> bool {
        previous
            .keys
            .iter()
            .any(|old| !self.keys.iter().any(|new| new.is_same_key(old)))
    }
}

/// How many times a key set refresh found a key withdrawn, shared by every key source and the
/// validated-token cache. A cached validation made before the latest withdrawal is not served:
/// its key may be the one withdrawn, and a provider withdraws a key to stop its tokens.
#[derive(Clone, Debug, Default)]
pub(crate) struct Withdrawals(Arc<AtomicU64>);

impl Withdrawals {
    /// The count now. Read before looking a key up, so that a withdrawal that lands during a
    /// validation keeps its result out of the cache.
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Called after the new key set is in place, so that whoever reads the new count also
    /// sees the new keys.
    pub(crate) fn record(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl Slot<KeySet> {
    /// [`Slot::refresh_locked`], recording a withdrawal when the fetched set lacks a key of the
    /// one it replaces.
    pub(crate) async fn refresh_keys<F, Fut, E>(
        &self,
        gate: MutexGuard<'_, Gate>,
        seen: u64,
        now: impl Fn() -> i64,
        forced_cooldown: Option<i64>,
        withdrawals: &Withdrawals,
        fetch: F,
    ) -> Refresh<KeySet>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<KeySet, E>>,
        E: std::fmt::Display,
    {
        // Taken under the gate, just before this call's own fetch: the set the fetch replaces.
        let mut replaced = None;
        let outcome = self
            .refresh_locked(gate, seen, now, forced_cooldown, || {
                replaced = self.current();
                fetch()
            })
            .await;
        if let (Refresh::Fresh(new), Some(old)) = (&outcome, replaced)
            && new.value.withdraws_from(&old.value)
        {
            tracing::info!("a published key was withdrawn; cached validations are dropped");
            withdrawals.record();
        }
        outcome
    }
}

/// Discovery and JWKS of the configured provider.
pub(crate) struct Provider {
    http: HttpClient,
    clock: Arc<dyn Clock>,
    discovery_url: Url,
    /// From configuration: the discovery document must name it, and never replaces it.
    expected_issuer: Issuer,
    jwks_override: Option<Url>,
    allow_insecure_http: bool,
    accepted: Vec<Algorithm>,
    max_bytes: usize,
    max_keys: usize,
    discovery_ttl: i64,
    jwks_ttl: i64,
    cooldown: i64,
    stale_limit: i64,
    discovery: Slot<Discovery>,
    jwks: Slot<KeySet>,
    withdrawals: Withdrawals,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("discovery_url", &self.discovery_url.as_str())
            .field("expected_issuer", &self.expected_issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    pub(crate) fn new(
        config: &OidcConfig,
        clock: Arc<dyn Clock>,
        withdrawals: Withdrawals,
    ) -> Self {
        Self {
            http: HttpClient::new(&config.http),
            clock,
            discovery_url: config.discovery_url.clone(),
            expected_issuer: config.expected_issuer().clone(),
            jwks_override: config.jwks_uri.clone(),
            allow_insecure_http: config.allow_insecure_http,
            accepted: config.algorithms.clone(),
            max_bytes: config.jwks_max_bytes,
            max_keys: config.jwks_max_keys,
            discovery_ttl: secs(config.discovery_ttl),
            jwks_ttl: secs(config.jwks_ttl),
            cooldown: secs(config.jwks_refetch_cooldown),
            stale_limit: secs(config.jwks_stale_limit),
            discovery: Slot::default(),
            jwks: Slot::default(),
            withdrawals,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The issuer tokens must carry: from configuration, never from the discovery document.
    pub(crate) fn issuer(&self) -> &Issuer {
        &self.expected_issuer
    }

    /// The discovery document: cached, and past its TTL refreshed in the background while the
    /// cached one answers, so that a hanging provider does not hold a login or a key fetch for
    /// its timeout. Only a cold start, with no document yet, waits for the fetch.
    pub(crate) async fn discovery(self: &Arc<Self>) -> Result<Arc<Discovery>, AuthError> {
        if let Some(doc) = self.discovery.current() {
            if doc.due(self.now(), self.discovery_ttl) {
                self.spawn_discovery_refresh(doc.generation);
            }
            return Ok(Arc::new(doc.value.clone()));
        }
        // In a task of its own, as a key fetch (see `verify`).
        let this = Arc::clone(self);
        let refreshed = detached(async move {
            this.discovery
                .refresh(0, || this.now(), None, || this.fetch_discovery())
                .await
        })
        .await;
        match refreshed {
            Refresh::Fresh(doc) | Refresh::Cooldown(Some(doc)) => Ok(Arc::new(doc.value.clone())),
            Refresh::Cooldown(None) => Err(AuthError::unavailable(
                "the discovery document is not available",
            )),
            Refresh::Failed { retry_after } => Err(AuthError::unavailable(
                "the identity provider is unreachable",
            )
            .with_retry_after(retry_after)),
        }
    }

    async fn fetch_discovery(&self) -> Result<Discovery, DiscoveryError> {
        let doc: Discovery = self
            .http
            .get_json(&self.discovery_url, self.max_bytes)
            .await
            .map_err(DiscoveryError::Fetch)?;
        let expected = &self.expected_issuer;
        if doc.issuer != expected.as_str() {
            // An issuer with a trailing '/' (Auth0's) has the same discovery URL as the one
            // without, and only the configuration can say which is meant.
            let hint = if doc.issuer.strip_suffix('/') == Some(expected.as_str()) {
                "; if the provider's issuer ends in '/', configure it exactly (`issuer`, OIDC_ISSUER)"
            } else {
                ""
            };
            tracing::error!(
                expected = %expected,
                advertised = %doc.issuer,
                "the discovery document names a different issuer; it is not used{hint}"
            );
            return Err(DiscoveryError::IssuerMismatch);
        }
        // The client secret goes to the token endpoint and the keys come from `jwks_uri`: over
        // plain http anyone on the way could read the one or replace the other, whatever
        // scheme the document itself came over.
        if !self.allow_insecure_http
            && let Some((endpoint, url)) = doc.insecure_endpoint(self.jwks_override.is_none())
        {
            tracing::error!(
                endpoint,
                host = url.host_str().unwrap_or(""),
                "the discovery document names a plain-http endpoint on a host that is not loopback; it is not used (allow_insecure_http, OIDC_ALLOW_INSECURE_HTTP, for a provider on a private network)"
            );
            return Err(DiscoveryError::InsecureEndpoint);
        }
        Ok(doc)
    }

    /// Where the JWKS is. A cached discovery document of any age is used at once (see
    /// [`discovery`](Self::discovery)): waiting for its refresh under the key-set gate would let a
    /// hanging provider hold every request that needs keys for two timeouts, one for discovery
    /// and one for the JWKS.
    async fn jwks_uri(self: &Arc<Self>) -> Result<Url, FetchError> {
        if let Some(uri) = &self.jwks_override {
            return Ok(uri.clone());
        }
        let discovery = self.discovery().await.map_err(|_| FetchError::Connect)?;
        discovery.jwks_uri.clone().ok_or_else(|| {
            tracing::error!(
                "the discovery document names no usable jwks_uri, so no key can be fetched; configure one (jwks_uri, OIDC_JWKS_URI)"
            );
            FetchError::NoJwksUri
        })
    }

    async fn fetch_jwks(self: &Arc<Self>) -> Result<KeySet, FetchError> {
        let uri = self.jwks_uri().await?;
        let doc: Value = self.http.get_json(&uri, self.max_bytes).await?;
        KeySet::parse(&doc, &self.accepted, self.max_keys)
    }

    /// Runs `refresh` in a task of its own when `slot` may refresh now. Nothing is spawned while
    /// a refresh of it runs or a failure's backoff lasts: during an outage every request past a
    /// TTL gets here, and a task per request that would only find the backoff is load for
    /// nothing.
    fn spawn_refresh<T, Fut>(
        self: &Arc<Self>,
        slot: &Slot<T>,
        refresh: impl FnOnce(Arc<Self>) -> Fut,
    ) where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if slot.may_refresh_now(self.now()) {
            handle.spawn(refresh(self.clone()));
        }
    }

    /// Refreshes the discovery document in a task of its own, through the slot's single
    /// flight.
    fn spawn_discovery_refresh(self: &Arc<Self>, seen: u64) {
        self.spawn_refresh(&self.discovery, move |this| async move {
            if let Some(gate) = this.discovery.try_gate() {
                let _ = this
                    .discovery
                    .refresh_locked(gate, seen, || this.now(), None, || this.fetch_discovery())
                    .await;
            }
        });
    }

    /// Verifies `signature` over `message` with the keys in memory, without waiting. `None`
    /// when only a fetch can decide: no usable keys, or none with the token's `kid`. Past the
    /// JWKS TTL it starts a refresh in the background.
    pub(crate) fn verify_now(
        self: &Arc<Self>,
        signed: Signed<'_>,
    ) -> Option<Result<(), AuthError>> {
        let now = self.now();
        let set = self
            .jwks
            .current()
            .filter(|s| s.within(now, self.stale_limit))?;
        if set.due(now, self.jwks_ttl) {
            self.spawn_background_refresh(set.generation);
        }
        set.value.verdict(signed)
    }

    /// Verifies `signature` over `message` with the key the token names.
    ///
    /// Known keys never wait on a refresh. An unknown `kid` causes at most one fetch per
    /// cooldown, shared by every request that needs it.
    pub(crate) async fn verify(self: &Arc<Self>, signed: Signed<'_>) -> Result<(), AuthError> {
        if let Some(verdict) = self.verify_now(signed) {
            return verdict;
        }
        let now = self.now();
        let current = self.jwks.current();
        let seen = current.as_ref().map_or(0, |s| s.generation);
        let usable = current.is_some_and(|s| s.within(now, self.stale_limit));
        // A cold or stale cache loads normally; a missing kid in usable keys is a forced refresh.
        let forced = usable.then_some(self.cooldown);
        let refreshed = self.refresh_keys_detached(seen, forced).await;
        after_refresh(refreshed, usable, signed)
    }

    /// Refreshes the key set through the slot's single flight, in a task of its own (see
    /// [`detached`]): a request that goes away does not cut the fetch short, so the requests
    /// queued behind it, and the next ones, get the keys it brings instead of a backoff
    /// charged to a provider that was answering. `forced`: the cooldown of a refresh forced by
    /// an unknown `kid`.
    async fn refresh_keys_detached(
        self: &Arc<Self>,
        seen: u64,
        forced: Option<i64>,
    ) -> Refresh<KeySet> {
        let this = Arc::clone(self);
        detached(async move {
            this.jwks
                .refresh_keys(
                    this.jwks.gate().await,
                    seen,
                    || this.now(),
                    forced,
                    &this.withdrawals,
                    || this.fetch_jwks(),
                )
                .await
        })
        .await
    }

    /// Refreshes the key set in a task of its own, through the slot's single flight.
    fn spawn_background_refresh(self: &Arc<Self>, seen: u64) {
        self.spawn_refresh(&self.jwks, move |this| async move {
            if let Some(gate) = this.jwks.try_gate() {
                let _ = this
                    .jwks
                    .refresh_keys(
                        gate,
                        seen,
                        || this.now(),
                        None,
                        &this.withdrawals,
                        || this.fetch_jwks(),
                    )
                    .await;
            }
        });
    }

    /// Fetches discovery (when needed) and the JWKS now; for start-up and readiness.
    pub(crate) async fn warm_up(self: &Arc<Self>) -> Result<usize, AuthError> {
        if self.jwks_override.is_none() {
            self.discovery().await?;
        }
        let seen = self.jwks.current().map_or(0, |s| s.generation);
        // A start-up probe that gives up must not leave the provider in backoff either.
        match self.refresh_keys_detached(seen, None).await {
            Refresh::Fresh(set) => Ok(set.value.len()),
            Refresh::Cooldown(Some(set)) => Ok(set.value.len()),
            Refresh::Cooldown(None) => {
                Err(AuthError::unavailable("the signing keys are not available"))
            }
            Refresh::Failed { retry_after } => Err(AuthError::unavailable(
                "the signing keys could not be fetched from the identity provider",
            )
            .with_retry_after(retry_after)),
        }
    }

    /// Whether usable keys are loaded (not older than the stale limit).
    pub(crate) fn is_ready(&self) -> bool {
        let now = self.now();
        self.jwks
            .current()
            .is_some_and(|s| s.within(now, self.stale_limit) && s.value.len() > 0)
    }
}

pub(crate) fn ambiguous() -> AuthError {
    AuthError::invalid("the token names no key and several published keys fit")
}

/// What a signature check needs of a compact JWS: the key it names, its algorithm, the signed
/// bytes and the signature. Its `Debug` shows the key id and algorithm only: the signed bytes
/// and the signature together are the bearer token.
#[derive(Clone, Copy)]
pub(crate) struct Signed<'a> {
    pub(crate) kid: Option<&'a str>,
    pub(crate) alg: Algorithm,
    pub(crate) message: &'a [u8],
    pub(crate) signature: &'a [u8],
}

impl std::fmt::Debug for Signed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// How many refreshes [`detached`] runs in tasks of their own at once, in this process. Each
/// request that needs a fetch waits for one, and a task outlives its request: without a bound,
/// requests that go away at once (with made-up key ids, during a slow fetch) would leave a task
/// each. Past it, a refresh runs in its caller's future, as the slot's own guard allows.
const MAX_DETACHED_FETCHES: usize = 64;

static DETACHED_FETCHES: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_DETACHED_FETCHES);

/// Runs `refresh` in a task of its own and waits for it: a caller that goes away leaves the
/// fetch running to its end (bounded by the HTTP client's timeout), so that its outcome is
/// recorded as it is rather than as an abandoned fetch. Without a Tokio runtime, or with
/// [`MAX_DETACHED_FETCHES`] under way, it runs here instead. A task that could not finish (a
/// panic, or the runtime shutting down) is a failure to retry shortly.
pub(crate) async fn detached<T: Send + Sync + 'static>(
    refresh: impl Future<Output = Refresh<T>> + Send + 'static,
) -> Refresh<T> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return refresh.await;
    };
    let Ok(permit) = DETACHED_FETCHES.try_acquire() else {
        return refresh.await;
    };
    let task = runtime.spawn(async move {
        let _permit = permit;
        refresh.await
    });
    match task.await {
        Ok(refreshed) => refreshed,
        Err(e) => {
            if e.is_panic() {
                tracing::error!("a fetch from the identity provider panicked");
            }
            Refresh::Failed { retry_after: 1 }
        }
    }
}

/// The verdict on `signed` once a refresh was asked for, given whether the keys the token was
/// first looked up in were `usable` (within the stale limit).
///
/// Within the cooldown the current keys still decide: a refresh that finished between the
/// caller's lookup and its request for one (a background refresh after the TTL, say) may have
/// brought the token's key.
fn after_refresh(
    refreshed: Refresh<KeySet>,
    usable: bool,
    signed: Signed<'_>,
) -> Result<(), AuthError> {
    let no_key = || AuthError::invalid("no published key matches the token");
    match refreshed {
        Refresh::Fresh(set) => set.value.verdict(signed).unwrap_or_else(|| Err(no_key())),
        Refresh::Cooldown(Some(set)) if usable => {
            set.value.verdict(signed).unwrap_or_else(|| Err(no_key()))
        }
        Refresh::Cooldown(_) if usable => Err(no_key()),
        Refresh::Cooldown(_) => Err(AuthError::unavailable("the signing keys are not available")),
        Refresh::Failed { retry_after } => Err(AuthError::unavailable(
            "the signing keys could not be fetched from the identity provider",
        )
        .with_retry_after(retry_after)),
    }
}

#[derive(Debug, thiserror::Error)]
enum DiscoveryError {
    #[error(transparent)]
    Fetch(FetchError),
    #[error("the discovery document names a different issuer")]
    IssuerMismatch,
    #[error("the discovery document names a plain-http endpoint")]
    InsecureEndpoint,
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    /// Only `issuer` must be usable. An endpoint that is not an absolute URL, or a flag that is
    /// not a boolean, is taken as absent rather than making the whole document unusable, which
    /// would stop every token from validating (a `jwks_uri` may be configured instead of the
    /// advertised one; without one, keys then cannot be fetched).
    #[test]
    fn broken_optional_fields_of_the_discovery_document_are_taken_as_absent() {
        let base = json!({
            "issuer": "https://idp.example",
            "jwks_uri": "https://idp.example/jwks",
            "token_endpoint": "https://idp.example/token",
            "authorization_response_iss_parameter_supported": true,
        });
        let parse = |edit: Value| {
            let mut doc = base.clone();
            for (name, value) in edit.as_object().into_iter().flatten() {
                doc[name] = value.clone();
            }
            serde_json::from_value::<Discovery>(doc).map_err(|e| e.to_string())
        };
        let whole = parse(json!({})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            whole.token_endpoint.as_ref().map(Url::as_str),
            Some("https://idp.example/token")
        );
        assert!(whole.authorization_response_iss_parameter_supported);
        for broken in [
            json!(""),
            json!("/token"),
            json!("javascript:alert(1)"),
            json!("data:text/html,<script>alert(1)</script>"),
            json!("file:///etc/passwd"),
            json!("ftp://idp.example/token"),
            json!(5),
            json!({"url": "x"}),
            json!(null),
        ] {
            let doc = parse(json!({"token_endpoint": broken, "end_session_endpoint": broken}))
                .unwrap_or_else(|e| panic!("{broken}: {e}"));
            assert!(doc.token_endpoint.is_none(), "{broken}");
            assert!(doc.end_session_endpoint.is_none(), "{broken}");
            assert_eq!(
                doc.jwks_uri.as_ref().map(Url::as_str),
                Some("https://idp.example/jwks")
            );
            let doc = parse(json!({ "jwks_uri": broken })).unwrap_or_else(|e| panic!("{e}"));
            assert!(doc.jwks_uri.is_none(), "{broken}");
        }
        for flag in [json!("true"), json!(1), json!(null)] {
            let doc = parse(json!({"authorization_response_iss_parameter_supported": flag}))
                .unwrap_or_else(|e| panic!("{flag}: {e}"));
            assert!(
                !doc.authorization_response_iss_parameter_supported,
                "{flag}"
            );
        }
        for broken in [json!(5), json!(null), json!(["https://idp.example"])] {
            assert!(parse(json!({ "issuer": broken })).is_err(), "{broken}");
        }
    }

    /// A fresh P-256 key pair and its public key as a JWK with `kid`.
    fn key_pair(kid: &str) -> (Value, EcdsaKeyPair) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap_or_else(|e| panic!("key generation: {e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap_or_else(|e| panic!("key: {e}"));
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        (jwk, pair)
    }

    /// A fresh P-256 public key as a JWK with `kid`.
    pub(crate) fn jwk(kid: &str) -> Value {
        key_pair(kid).0
    }

    /// The ES256 signature of `MESSAGE` by `pair`.
    fn sign(pair: &EcdsaKeyPair) -> Vec<u8> {
        pair.sign(&SystemRandom::new(), MESSAGE)
            .unwrap_or_else(|e| panic!("signing: {e}"))
            .as_ref()
            .to_vec()
    }

    const MESSAGE: &[u8] = b"header.payload";

    pub(crate) fn set(keys: &[&Value]) -> KeySet {
        KeySet::parse(&json!({ "keys": keys }), &[Algorithm::ES256], 10)
            .unwrap_or_else(|e| panic!("a key set: {e}"))
    }

    const START: i64 = 1_700_000_000;

    fn provider(
        adjust: impl FnOnce(crate::OidcConfigBuilder) -> crate::OidcConfigBuilder,
        clock: &ManualClock,
    ) -> Arc<Provider> {
        let config = adjust(
            OidcConfig::builder()
                .discovery_url("http://127.0.0.1:9/.well-known/openid-configuration")
                .client_id("app"),
        )
        .build()
        .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        Arc::new(Provider::new(
            &config,
            Arc::new(clock.clone()),
            Withdrawals::default(),
        ))
    }

    /// Puts a key set with `keys` into `provider`, fetched now.
    async fn load(provider: &Provider, clock: &ManualClock, keys: &[&Value]) {
        let doc = json!({ "keys": keys });
        let loaded = provider
            .jwks
            .refresh(
                0,
                || clock.now(),
                None,
                || async { KeySet::parse(&doc, &[Algorithm::ES256], 10) },
            )
            .await;
        assert!(matches!(loaded, Refresh::Fresh(_)));
    }

    pub(crate) fn signed(kid: &str) -> Signed<'_> {
        Signed {
            kid: Some(kid),
            alg: Algorithm::ES256,
            message: b"header.payload",
            signature: b"not a signature",
        }
    }

    fn signed_by<'a>(kid: Option<&'a str>, signature: &'a [u8]) -> Signed<'a> {
        Signed {
            kid,
            alg: Algorithm::ES256,
            message: MESSAGE,
            signature,
        }
    }

    /// Entries that are no usable key (encryption keys, malformed ones, other types) do not
    /// count against the key limit: a signing key after as many of them is still loaded. Usable
    /// keys past the limit are not.
    #[test]
    fn only_usable_keys_count_against_the_limit() {
        let junk: Vec<Value> = (0..20)
            .map(|i| json!({"kty": "EC", "crv": "P-256", "kid": format!("junk-{i}"), "x": "!"}))
            .collect();
        let (signing, pair) = key_pair("sig");
        let signature = sign(&pair);
        let mut entries: Vec<&Value> = junk.iter().collect();
        entries.push(&signing);
        let doc = json!({ "keys": entries });
        let keys = KeySet::parse(&doc, &[Algorithm::ES256], 10)
            .unwrap_or_else(|e| panic!("a key set: {e}"));
        assert_eq!(keys.len(), 1);
        let verdict = keys.verdict(signed_by(Some("sig"), &signature));
        assert!(matches!(verdict, Some(Ok(()))), "{verdict:?}");
        let many: Vec<Value> = (0..12).map(|i| jwk(&format!("k{i}"))).collect();
        let doc = json!({ "keys": many });
        let keys = KeySet::parse(&doc, &[Algorithm::ES256], 10)
            .unwrap_or_else(|e| panic!("a key set: {e}"));
        assert_eq!(keys.len(), 10);
    }

    /// Keys that share a `kid` (a provider reusing one across a rotation) are each tried, up
    /// to [`MAX_KEYS_PER_KID`]: the token of the second such key verifies, a forged one does
    /// not, and a key past the bound is not tried. Without a `kid`, several fitting keys are
    /// refused rather than tried.
    #[test]
    fn keys_sharing_a_kid_are_each_tried_up_to_a_bound() {
        let pairs: Vec<_> = (0..=MAX_KEYS_PER_KID).map(|_| key_pair("k")).collect();
        let jwks: Vec<&Value> = pairs.iter().map(|(jwk, _)| jwk).collect();
        let keys = set(&jwks);
        for (i, (_, pair)) in pairs.iter().enumerate().take(MAX_KEYS_PER_KID) {
            let signature = sign(pair);
            let verdict = keys.verdict(signed_by(Some("k"), &signature));
            assert!(matches!(verdict, Some(Ok(()))), "key {i}");
            assert!(keys.verdict(signed_by(Some("other"), &signature)).is_none());
        }
        let past_the_bound = sign(&pairs[MAX_KEYS_PER_KID].1);
        let verdict = keys.verdict(signed_by(Some("k"), &past_the_bound));
        assert!(matches!(verdict, Some(Err(_))), "a key past the bound");
        let forged = vec![7u8; 64];
        assert!(matches!(
            keys.verdict(signed_by(Some("k"), &forged)),
            Some(Err(_))
        ));
        let first = sign(&pairs[0].1);
        let no_kid = keys.verdict(signed_by(None, &first));
        assert!(
            matches!(no_kid, Some(Err(ref e)) if e.status() == 401),
            "several keys fit a token without a kid"
        );
        let only = set(&jwks[..1]);
        assert!(matches!(
            only.verdict(signed_by(None, &first)),
            Some(Ok(()))
        ));
    }

    /// A refresh that lands between a validation's lookup and its own request for one (a
    /// background refresh past the TTL) may bring the token's key; within the cooldown that
    /// validation then gets the current keys back, and they decide, not "no key".
    #[test]
    fn keys_current_during_the_cooldown_decide() {
        let (jwk, pair) = key_pair("new");
        let signature = sign(&pair);
        let current = Arc::new(Fetched {
            value: set(&[&jwk]),
            at: START,
            generation: 2,
            since: tokio::time::Instant::now(),
        });
        let verdict = after_refresh(
            Refresh::Cooldown(Some(current.clone())),
            true,
            signed_by(Some("new"), &signature),
        );
        assert!(verdict.is_ok(), "{verdict:?}");
        let unknown = after_refresh(
            Refresh::Cooldown(Some(current)),
            true,
            signed_by(Some("gone"), &signature),
        );
        assert!(
            matches!(unknown, Err(ref e) if e.status() == 401),
            "{unknown:?}"
        );
        let cold = after_refresh(
            Refresh::Cooldown(None),
            false,
            signed_by(Some("new"), &signature),
        );
        assert!(matches!(cold, Err(ref e) if e.status() == 503), "{cold:?}");
    }

    /// A refresh of `keys` at the clock's time that fails, as in an outage.
    pub(crate) async fn fail_a_refresh(keys: &Slot<KeySet>, clock: &ManualClock) {
        let failed = keys
            .refresh(
                1,
                || clock.now(),
                None,
                || async { Err::<KeySet, _>("unreachable") },
            )
            .await;
        assert!(matches!(failed, Refresh::Failed { .. }));
    }

    /// Tasks spawned and not yet finished; on a current-thread runtime a spawned task does not
    /// run before the test awaits, so this counts every spawn since.
    pub(crate) fn tasks() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    /// While a failed refresh backs off, validations past the TTL start no refresh task: each
    /// would only find the backoff and end. Once the backoff has passed, one starts.
    #[tokio::test(flavor = "current_thread")]
    async fn no_refresh_task_is_spawned_while_backing_off() {
        let clock = ManualClock::new(START);
        let provider = provider(|b| b.jwks_ttl(Duration::from_secs(600)), &clock);
        load(&provider, &clock, &[&jwk("a")]).await;
        clock.advance(601);
        fail_a_refresh(&provider.jwks, &clock).await;
        for _ in 0..100 {
            assert!(
                provider.verify_now(signed("a")).is_some(),
                "keys are usable"
            );
        }
        assert_eq!(tasks(), 0, "tasks spawned during the backoff");
        clock.advance(60);
        assert!(provider.verify_now(signed("a")).is_some());
        assert_eq!(tasks(), 1, "a refresh once the backoff has passed");
    }

    /// The clock set back past the last fetch: a refresh is due at once, not an hour (the step
    /// back) after the TTL, and the keys stay usable meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn a_clock_set_back_makes_a_refresh_due() {
        let clock = ManualClock::new(START);
        let provider = provider(|b| b.jwks_ttl(Duration::from_secs(600)), &clock);
        load(&provider, &clock, &[&jwk("a")]).await;
        assert!(provider.verify_now(signed("a")).is_some());
        assert_eq!(tasks(), 0, "fresh keys");
        clock.set(START - 3600);
        assert!(
            provider.verify_now(signed("a")).is_some(),
            "keys are usable"
        );
        assert_eq!(tasks(), 1, "a refresh after the clock was set back");
    }

    /// The clock set back a day past the last fetch: the keys stay usable for the stale limit
    /// counted on the monotonic clock from their fetch, not for the limit plus the day that
    /// their age on the wall clock stays negative.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_clock_set_back_does_not_stretch_the_stale_limit() {
        let clock = ManualClock::new(START);
        let provider = provider(|b| b.jwks_stale_limit(Duration::from_secs(3600)), &clock);
        load(&provider, &clock, &[&jwk("a")]).await;
        clock.set(START - 24 * 3600);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(provider.is_ready(), "within the stale limit");
        assert!(provider.verify_now(signed("a")).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            !provider.is_ready(),
            "past it, although the wall clock says otherwise"
        );
        assert!(provider.verify_now(signed("a")).is_none());
    }

    /// Timings of `Duration::MAX` mean "never", not -1: loaded keys stay usable and no refresh
    /// is due.
    #[tokio::test(flavor = "current_thread")]
    async fn the_longest_timings_keep_keys_usable() {
        let clock = ManualClock::new(START);
        let provider = provider(
            |b| {
                b.jwks_ttl(Duration::MAX)
                    .jwks_stale_limit(Duration::MAX)
                    .jwks_refetch_cooldown(Duration::MAX)
                    .discovery_ttl(Duration::MAX)
            },
            &clock,
        );
        load(&provider, &clock, &[&jwk("a")]).await;
        clock.advance(365 * 24 * 3600);
        assert!(provider.is_ready());
        assert!(provider.verify_now(signed("a")).is_some());
        assert_eq!(tasks(), 0, "no refresh is due");
    }

    /// A key is withdrawn when it is gone or its kid names other material; an added key, or
    /// the same keys in another order, withdraw nothing.
    #[test]
    fn withdrawn_keys_are_told_apart_from_added_ones() {
        let (a, b, a_again) = (jwk("a"), jwk("b"), jwk("a"));
        let old = set(&[&a, &b]);
        assert!(!set(&[&b, &a]).withdraws_from(&old));
        assert!(!set(&[&a, &b, &jwk("c")]).withdraws_from(&old));
        assert!(set(&[&b]).withdraws_from(&old));
        assert!(set(&[&a_again, &b]).withdraws_from(&old));
        assert!(!set(&[&a]).withdraws_from(&set(&[])));
    }

    /// A refresh records a withdrawal once the fetched set lacks a key of the one it replaces,
    /// and only then.
    #[tokio::test]
    async fn a_refresh_that_drops_a_key_records_a_withdrawal() {
        let (a, b) = (jwk("a"), jwk("b"));
        let slot = Slot::<KeySet>::default();
        let withdrawals = Withdrawals::default();
        let fetch = |keys: Vec<Value>| {
            let doc = json!({ "keys": keys });
            move || async move { KeySet::parse(&doc, &[Algorithm::ES256], 10) }
        };
        let seen = |slot: &Slot<KeySet>| slot.current().map_or(0, |c| c.generation);

        slot.refresh_keys(
            slot.gate().await,
            0,
            || 1,
            None,
            &withdrawals,
            fetch(vec![a.clone()]),
        )
        .await;
        assert_eq!(withdrawals.current(), 0, "a first load withdraws nothing");
        slot.refresh_keys(
            slot.gate().await,
            seen(&slot),
            || 2,
            None,
            &withdrawals,
            fetch(vec![a.clone(), b.clone()]),
        )
        .await;
        assert_eq!(withdrawals.current(), 0, "a key was only added");
        slot.refresh_keys(
            slot.gate().await,
            seen(&slot),
            || 3,
            None,
            &withdrawals,
            fetch(vec![b.clone()]),
        )
        .await;
        assert_eq!(withdrawals.current(), 1, "`a` was withdrawn");
        slot.refresh_keys(
            slot.gate().await,
            seen(&slot),
            || 4,
            None,
            &withdrawals,
            fetch(vec![b]),
        )
        .await;
        assert_eq!(withdrawals.current(), 1, "the same keys again");
    }
}
