//! The identity provider as seen from the server: its discovery document and its JWKS, both
//! cached, refreshed in the background, and fetched with bounded time and size.

mod http;
mod keys;
mod slot;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::algorithm::Algorithm;
use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::error::AuthError;
use crate::secret::Issuer;

pub(crate) use http::{FetchError, HttpClient};
pub(crate) use keys::VerifyingKey;
pub(crate) use slot::{Refresh, Slot};

/// The parts of the discovery document this crate uses.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Discovery {
    /// The provider's issuer identifier.
    pub(crate) issuer: String,
    /// Where the provider publishes its signing keys.
    #[serde(deserialize_with = "url_field")]
    pub(crate) jwks_uri: Url,
    /// The authorization endpoint.
    #[serde(default, deserialize_with = "opt_url_field")]
    pub(crate) authorization_endpoint: Option<Url>,
    /// The token endpoint.
    #[serde(default, deserialize_with = "opt_url_field")]
    pub(crate) token_endpoint: Option<Url>,
    /// The userinfo endpoint.
    #[serde(default, deserialize_with = "opt_url_field")]
    pub(crate) userinfo_endpoint: Option<Url>,
    /// The RP-initiated logout endpoint.
    #[serde(default, deserialize_with = "opt_url_field")]
    pub(crate) end_session_endpoint: Option<Url>,
    /// The device authorization endpoint (RFC 8628).
    #[serde(default, deserialize_with = "opt_url_field")]
    pub(crate) device_authorization_endpoint: Option<Url>,
    /// Whether the provider returns `iss` in authorization responses (RFC 9207).
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

fn opt_url_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| Url::parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn url_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let s = String::deserialize(d)?;
    Url::parse(&s).map_err(serde::de::Error::custom)
}

/// The keys of one JWKS, parsed once.
#[derive(Debug)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// What a lookup by `kid` and algorithm found.
pub(crate) enum Lookup<'a> {
    Found(&'a aws_lc_rs::signature::ParsedPublicKey),
    /// No kid in the token and more than one key fits: refused rather than guessed.
    Ambiguous,
    Missing,
}

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
        let mut keys = Vec::new();
        for entry in entries.iter().take(max_keys) {
            let Some(jwk) = entry.as_object() else {
                continue;
            };
            match VerifyingKey::from_jwk(jwk, accepted) {
                Ok(key) => keys.push(key),
                Err(reason) => tracing::debug!(%reason, "skipped a JWKS key"),
            }
        }
        if entries.len() > max_keys {
            tracing::warn!(
                max_keys,
                "JWKS has more keys than allowed; the rest were ignored"
            );
        }
        Ok(Self { keys })
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .find_map(|k| k.for_alg(alg))
                .map_or(Lookup::Missing, Lookup::Found),
            None => {
                let mut fitting = self.keys.iter().filter_map(|k| k.for_alg(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(key),
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                    (None, _) => Lookup::Missing,
                }
            }
        }
    }

    /// What this key set alone says of a signature: `None` when it has no key for the token,
    /// so that only a refresh can decide.
    pub(crate) fn verdict(&self, signed: Signed<'_>) -> Option<Result<(), AuthError>> {
        match self.lookup(signed.kid, signed.alg) {
            Lookup::Found(key) => Some(check(key, signed.message, signed.signature)),
            Lookup::Ambiguous => Some(Err(ambiguous())),
            Lookup::Missing => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Discovery and JWKS of the configured provider.
pub(crate) struct Provider {
    http: HttpClient,
    clock: Arc<dyn Clock>,
    discovery_url: Url,
    expected_issuer: Option<Issuer>,
    jwks_override: Option<Url>,
    accepted: Vec<Algorithm>,
    max_bytes: usize,
    max_keys: usize,
    discovery_ttl: i64,
    jwks_ttl: i64,
    cooldown: i64,
    stale_limit: i64,
    discovery: Slot<Discovery>,
    jwks: Slot<KeySet>,
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
    pub(crate) fn new(config: &OidcConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            http: HttpClient::new(config.connect_timeout, config.timeout),
            clock,
            discovery_url: config.discovery_url.clone(),
            expected_issuer: config.expected_issuer(),
            jwks_override: config.jwks_uri.clone(),
            accepted: config.algorithms.clone(),
            max_bytes: config.jwks_max_bytes,
            max_keys: config.jwks_max_keys,
            discovery_ttl: config.discovery_ttl.as_secs() as i64,
            jwks_ttl: config.jwks_ttl.as_secs() as i64,
            cooldown: config.jwks_refetch_cooldown.as_secs() as i64,
            stale_limit: config.jwks_stale_limit.as_secs() as i64,
            discovery: Slot::default(),
            jwks: Slot::default(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The issuer tokens must carry; from configuration when known, else from discovery.
    pub(crate) async fn issuer(&self) -> Result<Issuer, AuthError> {
        match &self.expected_issuer {
            Some(issuer) => Ok(issuer.clone()),
            None => Ok(Issuer::new(self.discovery().await?.issuer.clone())),
        }
    }

    /// The issuer if it is known without waiting: from configuration, or from a discovery
    /// document within its TTL. `None` means [`issuer`](Self::issuer) has to fetch.
    pub(crate) fn issuer_now(&self) -> Option<Issuer> {
        if let Some(issuer) = &self.expected_issuer {
            return Some(issuer.clone());
        }
        let doc = self.discovery.current()?;
        (self.now() - doc.at < self.discovery_ttl).then(|| Issuer::new(doc.value.issuer.clone()))
    }

    /// The discovery document: cached, refreshed after its TTL, the old one kept while the
    /// provider is unreachable.
    pub(crate) async fn discovery(&self) -> Result<Arc<Discovery>, AuthError> {
        let current = self.discovery.current();
        let seen = current.as_ref().map_or(0, |c| c.generation);
        if let Some(doc) = &current
            && self.now() - doc.at < self.discovery_ttl
        {
            return Ok(Arc::new(doc.value.clone()));
        }
        let refreshed = self
            .discovery
            .refresh(seen, || self.now(), None, || self.fetch_discovery())
            .await;
        match refreshed {
            Refresh::Fresh(doc) => Ok(Arc::new(doc.value.clone())),
            Refresh::Cooldown(Some(doc)) => Ok(Arc::new(doc.value.clone())),
            Refresh::Cooldown(None) => Err(AuthError::unavailable(
                "the discovery document is not available",
            )),
            Refresh::Failed { retry_after } => match current {
                Some(doc) => Ok(Arc::new(doc.value.clone())),
                None => Err(
                    AuthError::unavailable("the identity provider is unreachable")
                        .with_retry_after(retry_after),
                ),
            },
        }
    }

    async fn fetch_discovery(&self) -> Result<Discovery, DiscoveryError> {
        let doc: Discovery = self
            .http
            .get_json(&self.discovery_url, self.max_bytes)
            .await
            .map_err(DiscoveryError::Fetch)?;
        if let Some(expected) = &self.expected_issuer
            && doc.issuer != expected.as_str()
        {
            tracing::error!(
                expected = %expected,
                advertised = %doc.issuer,
                "the discovery document names a different issuer; it is not used"
            );
            return Err(DiscoveryError::IssuerMismatch);
        }
        Ok(doc)
    }

    async fn jwks_uri(&self) -> Result<Url, FetchError> {
        if let Some(uri) = &self.jwks_override {
            return Ok(uri.clone());
        }
        self.discovery()
            .await
            .map(|d| d.jwks_uri.clone())
            .map_err(|_| FetchError::Connect)
    }

    async fn fetch_jwks(&self) -> Result<KeySet, FetchError> {
        let uri = self.jwks_uri().await?;
        let doc: Value = self.http.get_json(&uri, self.max_bytes).await?;
        KeySet::parse(&doc, &self.accepted, self.max_keys)
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
            .filter(|s| now - s.at <= self.stale_limit)?;
        if now - set.at >= self.jwks_ttl {
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
        let usable = current.is_some_and(|s| now - s.at <= self.stale_limit);
        // A cold or stale cache loads normally; a missing kid in usable keys is a forced refresh.
        let forced = usable.then_some(self.cooldown);
        let refreshed = self
            .jwks
            .refresh(seen, || self.now(), forced, || self.fetch_jwks())
            .await;
        let no_key = || AuthError::invalid("no published key matches the token");
        match refreshed {
            Refresh::Fresh(set) => set.value.verdict(signed).unwrap_or_else(|| Err(no_key())),
            Refresh::Cooldown(_) if usable => Err(no_key()),
            Refresh::Cooldown(_) => {
                Err(AuthError::unavailable("the signing keys are not available"))
            }
            Refresh::Failed { retry_after } => Err(AuthError::unavailable(
                "the signing keys could not be fetched from the identity provider",
            )
            .with_retry_after(retry_after)),
        }
    }

    fn spawn_background_refresh(self: &Arc<Self>, seen: u64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.jwks.try_gate().is_none() {
            return;
        }
        let this = self.clone();
        handle.spawn(async move {
            if let Some(gate) = this.jwks.try_gate() {
                let _ = this
                    .jwks
                    .refresh_locked(gate, seen, || this.now(), None, || this.fetch_jwks())
                    .await;
            }
        });
    }

    /// Fetches discovery (when needed) and the JWKS now; for start-up and readiness.
    pub(crate) async fn warm_up(&self) -> Result<usize, AuthError> {
        if self.expected_issuer.is_none() || self.jwks_override.is_none() {
            self.discovery().await?;
        }
        let seen = self.jwks.current().map_or(0, |s| s.generation);
        match self
            .jwks
            .refresh(seen, || self.now(), None, || self.fetch_jwks())
            .await
        {
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
            .is_some_and(|s| now - s.at <= self.stale_limit && s.value.len() > 0)
    }
}

pub(crate) fn ambiguous() -> AuthError {
    AuthError::invalid("the token names no key and several published keys fit")
}

/// What a signature check needs of a compact JWS: the key it names, its algorithm, the signed
/// bytes and the signature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signed<'a> {
    pub(crate) kid: Option<&'a str>,
    pub(crate) alg: Algorithm,
    pub(crate) message: &'a [u8],
    pub(crate) signature: &'a [u8],
}

pub(crate) fn check(
    key: &aws_lc_rs::signature::ParsedPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), AuthError> {
    key.verify_sig(message, signature)
        .map_err(|_| AuthError::invalid("the token signature is invalid"))
}

#[derive(Debug, thiserror::Error)]
enum DiscoveryError {
    #[error(transparent)]
    Fetch(FetchError),
    #[error("the discovery document names a different issuer")]
    IssuerMismatch,
}
