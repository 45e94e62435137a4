//! Federation: tokens minted by other instances whose issuer is trusted.
//!
//! Each trusted issuer has its own key set, fetched from `<issuer><broker_jwks_path>` and used
//! for that issuer's tokens only, so a peer cannot sign for another. Fetching follows the rules
//! of the provider JWKS: bounded size and key count, a refetch on an unknown `kid` at most once
//! per cooldown, backoff after failures, the last good set kept while the peer is down. Every
//! successful fetch is written to the store, and a cold start reads it back when the peer is
//! unreachable. With an encryption key that copy is sealed with it, bound to its issuer and
//! fetch time, so someone who can write the database cannot put keys of their own in it. A
//! token naming an issuer that is not trusted never causes a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;

use super::cipher::AtRest;
use crate::algorithm::Algorithm;
use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::error::AuthError;
use crate::provider::{
    FetchError, Fetched, HttpClient, KeySet, Refresh, Signed, Slot, Withdrawals,
};
use crate::store::Store;

struct Peer {
    issuer: String,
    jwks_url: Url,
    keys: Slot<KeySet>,
    /// When a restore from the store last found no usable copy; another is not tried within
    /// [`RESTORE_RETRY_SECS`], so that an outage does not read the store (and warn) on every
    /// request naming this peer.
    restore_failed_at: AtomicI64,
}

/// How long a restore that found no usable stored copy of a peer's keys is not tried again:
/// another instance that reaches the peer meanwhile stores a copy, found after this long.
const RESTORE_RETRY_SECS: i64 = 10;

/// The trusted peer issuers and their keys.
pub(crate) struct Peers {
    peers: Vec<Peer>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    accepted: Vec<Algorithm>,
    max_bytes: usize,
    max_keys: usize,
    ttl: i64,
    cooldown: i64,
    stale_limit: i64,
    leeway: i64,
    withdrawals: Withdrawals,
    /// Seals the stored copies of peers' keys.
    at_rest: AtRest,
}

/// The associated data that binds a stored copy of a peer's keys to its issuer and fetch time.
fn copy_row(issuer: &str, fetched_at: i64) -> String {
    format!("peer-jwks:{fetched_at}:{issuer}")
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field(
                "issuers",
                &self.peers.iter().map(|p| &p.issuer).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Peers {
    pub(crate) fn new(
        config: &OidcConfig,
        clock: Arc<dyn Clock>,
        withdrawals: Withdrawals,
    ) -> Self {
        let peers = config
            .trusted_issuers
            .iter()
            .filter_map(|issuer| {
                let url = format!("{}{}", issuer.as_str(), config.broker_jwks_path);
                match Url::parse(&url) {
                    Ok(jwks_url) => Some(Peer {
                        issuer: issuer.as_str().to_owned(),
                        jwks_url,
                        keys: Slot::default(),
                        restore_failed_at: AtomicI64::new(i64::MIN),
                    }),
                    Err(e) => {
                        tracing::error!(issuer = %issuer, error = %e, "a trusted issuer has no valid JWKS URL; it is ignored");
                        None
                    }
                }
            })
            .collect();
        Self {
            peers,
            http: HttpClient::new(&config.http),
            clock,
            accepted: config.algorithms.clone(),
            max_bytes: config.jwks_max_bytes,
            max_keys: config.jwks_max_keys,
            ttl: crate::clock::secs(config.jwks_ttl),
            cooldown: crate::clock::secs(config.jwks_refetch_cooldown),
            stale_limit: crate::clock::secs(config.jwks_stale_limit),
            leeway: crate::clock::secs(config.leeway),
            withdrawals,
            at_rest: AtRest::configured(config),
        }
    }

    /// The stored form of a copy of `issuer`'s keys fetched at `fetched_at`: sealed (base64)
    /// with an encryption key, else the document itself.
    fn seal_copy(&self, issuer: &str, text: String, fetched_at: i64) -> Option<String> {
        if !self.at_rest.encrypts() {
            return Some(text);
        }
        let sealed = self
            .at_rest
            .seal(&copy_row(issuer, fetched_at), text.as_bytes())
            .ok()?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The document in a stored copy of `issuer`'s keys fetched at `fetched_at`, when it can
    /// be trusted: with an encryption key only a copy it sealed for that issuer and time.
    fn open_copy(&self, issuer: &str, stored: &str, fetched_at: i64) -> Option<Value> {
        let text = if stored.starts_with('{') {
            if self.at_rest.encrypts() {
                tracing::warn!(issuer = %issuer, "a stored copy of a peer's keys is in plain text while an encryption key is configured; it is not used");
                return None;
            }
            stored.to_owned()
        } else {
            let opened = URL_SAFE_NO_PAD
                .decode(stored)
                .ok()
                .and_then(|sealed| {
                    self.at_rest
                        .open(&copy_row(issuer, fetched_at), &sealed)
                        .ok()
                })
                .and_then(|plain| String::from_utf8(plain).ok());
            let Some(text) = opened else {
                tracing::warn!(issuer = %issuer, "a stored copy of a peer's keys does not open with the encryption key; it is not used");
                return None;
            };
            text
        };
        serde_json::from_str(&text).ok()
    }

    /// Whether `issuer` is trusted: equal to a configured one (which the configuration wrote the
    /// way a broker writes its own `iss`), like every issuer comparison here; the token's `iss`
    /// is not normalised (a trailing `/` or capitals in it do not match).
    pub(crate) fn trusts(&self, issuer: &str) -> bool {
        self.peer(issuer).is_some()
    }

    fn peer(&self, issuer: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.issuer == issuer)
    }

    /// The trusted issuers' JWKS fetch, persisted on success.
    async fn fetch(
        &self,
        peer: &Peer,
        store: Option<&Arc<dyn Store>>,
    ) -> Result<KeySet, FetchError> {
        let doc = self
            .http
            .get_json::<Value>(&peer.jwks_url, self.max_bytes)
            .await?;
        let set = KeySet::parse(&doc, &self.accepted, self.max_keys)?;
        if let Some(store) = store {
            let store = store.clone();
            let (issuer, now) = (peer.issuer.clone(), self.clock.now());
            let Some(text) = self.seal_copy(&issuer, doc.to_string(), now) else {
                tracing::warn!(issuer = %issuer, "could not seal a peer's keys for the store");
                return Ok(set);
            };
            // Persisting must not delay validation, and is not needed for it.
            tokio::spawn(async move {
                if let Err(e) = store.put_peer_jwks(&issuer, &text, now).await {
                    tracing::warn!(issuer = %issuer, error = %e, "could not persist a peer's keys");
                }
            });
        }
        Ok(set)
    }

    /// A start while the peer is unreachable: its keys as last persisted, if they are within
    /// the stale limit, aging from when they were fetched. Never over keys in memory, which
    /// age on their own: an unreachable peer's keys stop validating at the stale limit.
    async fn restore(
        &self,
        peer: &Peer,
        store: Option<&Arc<dyn Store>>,
    ) -> Option<Arc<Fetched<KeySet>>> {
        if peer.keys.current().is_some() {
            return None;
        }
        let now = self.clock.now();
        // A clock set back behind the last attempt does not hold off the next one.
        let failed_at = peer.restore_failed_at.load(Ordering::Relaxed);
        if failed_at <= now && now < failed_at.saturating_add(RESTORE_RETRY_SECS) {
            return None;
        }
        let restored = self.read_stored(peer, store?, now).await;
        if restored.is_none() {
            peer.restore_failed_at.store(now, Ordering::Relaxed);
        }
        restored
    }

    /// The stored copy of `peer`'s keys, put in memory when it is usable at `now`.
    async fn read_stored(
        &self,
        peer: &Peer,
        store: &Arc<dyn Store>,
        now: i64,
    ) -> Option<Arc<Fetched<KeySet>>> {
        let (text, fetched_at) = store.get_peer_jwks(&peer.issuer).await.ok().flatten()?;
        // A time further ahead of the clock than the leeway is no fetch this process can age
        // (a damaged row, or a clock set back): such keys would never reach the stale limit.
        // Within the leeway (another instance's clock a little fast) the copy counts as
        // fetched now.
        if fetched_at > now.saturating_add(self.leeway)
            || now.saturating_sub(fetched_at) > self.stale_limit
        {
            tracing::warn!(issuer = %peer.issuer, fetched_at, "peer unreachable, and its stored keys are past the stale limit or dated ahead of the clock");
            return None;
        }
        let doc = self.open_copy(&peer.issuer, &text, fetched_at)?;
        let set = KeySet::parse(&doc, &self.accepted, self.max_keys).ok()?;
        tracing::warn!(issuer = %peer.issuer, fetched_at, "peer unreachable; using its keys from the store");
        peer.keys.restore(set, fetched_at.min(now)).await
    }

    /// Verifies a token of the trusted `issuer` with that issuer's keys only.
    pub(crate) async fn verify(
        self: &Arc<Self>,
        store: Option<&Arc<dyn Store>>,
        issuer: &str,
        signed: Signed<'_>,
    ) -> Result<(), AuthError> {
        if let Some(verdict) = self.verify_now(store, issuer, signed) {
            return verdict;
        }
        let Some(peer) = self.peer(issuer) else {
            return Err(AuthError::invalid("the token issuer is not trusted"));
        };
        let now = self.clock.now();
        let current = peer.keys.current();
        let seen = current.as_ref().map_or(0, |c| c.generation);
        let usable = current.is_some_and(|s| s.within(now, self.stale_limit));
        let forced = usable.then_some(self.cooldown);
        let no_key = || AuthError::invalid("no key published by the token's issuer matches it");
        // In a task of its own, which a request that goes away does not cut short (see the
        // provider's `verify`).
        let (this, kept, issuer) = (Arc::clone(self), store.cloned(), issuer.to_owned());
        let refreshed = crate::provider::detached(async move {
            let Some(peer) = this.peer(&issuer) else {
                return Refresh::Cooldown(None);
            };
            peer.keys
                .refresh_keys(
                    peer.keys.gate().await,
                    seen,
                    || this.clock.now(),
                    forced,
                    &this.withdrawals,
                    || this.fetch(peer, kept.as_ref()),
                )
                .await
        })
        .await;
        match refreshed {
            Refresh::Fresh(set) => set.value.verdict(signed).unwrap_or_else(|| Err(no_key())),
            // Keys a refresh brought since this validation's lookup still decide.
            Refresh::Cooldown(Some(set)) if usable => {
                set.value.verdict(signed).unwrap_or_else(|| Err(no_key()))
            }
            Refresh::Cooldown(_) if usable => Err(no_key()),
            Refresh::Cooldown(_) => Err(AuthError::unavailable(
                "the keys of the token's issuer are not available",
            )),
            Refresh::Failed { retry_after } => {
                let unavailable = || {
                    AuthError::unavailable("the keys of the token's issuer could not be fetched")
                        .with_retry_after(retry_after)
                };
                match self.restore(peer, store).await {
                    Some(set) => set
                        .value
                        .verdict(signed)
                        .unwrap_or_else(|| Err(unavailable())),
                    None => Err(unavailable()),
                }
            }
        }
    }

    /// Verifies with the peer's keys in memory, without waiting: `None` when only a fetch can
    /// decide. An untrusted issuer is refused here. Past the TTL a refresh starts in the
    /// background.
    pub(crate) fn verify_now(
        self: &Arc<Self>,
        store: Option<&Arc<dyn Store>>,
        issuer: &str,
        signed: Signed<'_>,
    ) -> Option<Result<(), AuthError>> {
        let Some(peer) = self.peer(issuer) else {
            return Some(Err(AuthError::invalid("the token issuer is not trusted")));
        };
        let now = self.clock.now();
        let set = peer
            .keys
            .current()
            .filter(|s| s.within(now, self.stale_limit))?;
        if set.due(now, self.ttl) {
            self.spawn_refresh(issuer, set.generation, store);
        }
        set.value.verdict(signed)
    }
}

impl Peers {
    /// Refreshes a peer's keys in the background after their TTL; validation never waits.
    fn spawn_refresh(self: &Arc<Self>, issuer: &str, seen: u64, store: Option<&Arc<dyn Store>>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(peer) = self.peer(issuer) else {
            return;
        };
        // Not while a refresh runs or a failed one backs off: during a peer's outage every
        // validation past the TTL asks, and each would start a task that only finds that out.
        if !peer.keys.may_refresh_now(self.clock.now()) {
            return;
        }
        let (this, issuer, store) = (self.clone(), peer.issuer.clone(), store.cloned());
        handle.spawn(async move {
            let Some(peer) = this.peer(&issuer) else {
                return;
            };
            if let Some(gate) = peer.keys.try_gate() {
                let _ = peer
                    .keys
                    .refresh_keys(
                        gate,
                        seen,
                        || this.clock.now(),
                        None,
                        &this.withdrawals,
                        || this.fetch(peer, store.as_ref()),
                    )
                    .await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn peers(trusted: &[&str]) -> Arc<Peers> {
        peers_on(trusted, Arc::new(SystemClock))
    }

    fn peers_on(trusted: &[&str], clock: Arc<dyn Clock>) -> Arc<Peers> {
        let config = OidcConfig::builder()
            .discovery_url("http://127.0.0.1:9/.well-known/openid-configuration")
            .client_id("api")
            .broker_mode(true)
            .broker_audience("api")
            .trusted_issuers(trusted.iter().map(|i| (*i).to_owned()))
            .build();
        let Ok(config) = config else {
            panic!("valid configuration");
        };
        Arc::new(Peers::new(&config, clock, Withdrawals::default()))
    }

    /// While a failed refresh of a peer's keys backs off, validations past the TTL start no
    /// refresh task (each would only find the backoff and end); once it has passed, one does.
    #[tokio::test(flavor = "current_thread")]
    async fn no_refresh_task_is_spawned_for_a_peer_while_backing_off() {
        use crate::clock::ManualClock;
        use crate::provider::tests::{fail_a_refresh, jwk, set, signed, tasks};
        const ISSUER: &str = "https://a.example";
        let clock = ManualClock::new(1_700_000_000);
        // The default JWKS TTL (600 s) is what the clock is moved past below.
        let peers = peers_on(&[ISSUER], Arc::new(clock.clone()));
        let Some(peer) = peers.peer(ISSUER) else {
            panic!("the peer is configured");
        };
        let keys = set(&[&jwk("a")]);
        let loaded = peer
            .keys
            .refresh(0, || clock.now(), None, || async { Ok::<_, String>(keys) })
            .await;
        assert!(matches!(loaded, Refresh::Fresh(_)));
        clock.advance(601);
        fail_a_refresh(&peer.keys, &clock).await;
        for _ in 0..100 {
            assert!(peers.verify_now(None, ISSUER, signed("a")).is_some());
        }
        assert_eq!(tasks(), 0, "tasks spawned during the backoff");
        clock.advance(60);
        assert!(peers.verify_now(None, ISSUER, signed("a")).is_some());
        assert_eq!(tasks(), 1, "a refresh once the backoff has passed");
    }

    /// With an encryption key a stored copy opens only for the issuer and fetch time it was
    /// sealed for, and a copy in plain text is not used; without one the document is stored as
    /// it is, and a sealed copy does not open.
    #[test]
    fn a_stored_copy_opens_only_for_its_issuer_and_time() {
        const ISSUER: &str = "https://a.example";
        let doc = r#"{"keys":[]}"#;
        let sealing = |key: Option<&str>| {
            let mut builder = OidcConfig::builder()
                .discovery_url("http://127.0.0.1:9/.well-known/openid-configuration")
                .client_id("api")
                .broker_mode(true)
                .broker_audience("api")
                .trusted_issuers([ISSUER.to_owned()]);
            if let Some(key) = key {
                builder = builder.encryption_key(key);
            }
            let Ok(config) = builder.build() else {
                panic!("valid configuration");
            };
            Peers::new(&config, Arc::new(SystemClock), Withdrawals::default())
        };
        let keyed = sealing(Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
        let Some(sealed) = keyed.seal_copy(ISSUER, doc.to_owned(), 100) else {
            panic!("sealed");
        };
        assert!(!sealed.contains("keys"), "{sealed}");
        assert_eq!(
            keyed.open_copy(ISSUER, &sealed, 100),
            Some(serde_json::json!({"keys": []}))
        );
        assert_eq!(keyed.open_copy(ISSUER, &sealed, 101), None);
        assert_eq!(keyed.open_copy("https://b.example", &sealed, 100), None);
        assert_eq!(keyed.open_copy(ISSUER, doc, 100), None);
        assert_eq!(keyed.open_copy(ISSUER, "not base64!", 100), None);

        let keyless = sealing(None);
        assert_eq!(
            keyless.seal_copy(ISSUER, doc.to_owned(), 100).as_deref(),
            Some(doc)
        );
        assert!(keyless.open_copy(ISSUER, doc, 100).is_some());
        assert_eq!(keyless.open_copy(ISSUER, &sealed, 100), None);
    }

    /// B6 for peers: the token's `iss` must be a configured issuer exactly, in the form a
    /// broker writes it (without a trailing slash, which configuration drops); a trailing
    /// slash, a case change or a prefix is another issuer.
    #[test]
    fn trust_is_exact() {
        let p = peers(&["https://a.example", "https://b.example/"]);
        assert!(p.trusts("https://a.example"));
        assert!(p.trusts("https://b.example"));
        for other in [
            "https://a.example/",
            "https://b.example/",
            "https://A.example",
            "https://a.example.evil",
            "https://a.exampl",
            "",
        ] {
            assert!(!p.trusts(other), "{other}");
        }
    }
}
