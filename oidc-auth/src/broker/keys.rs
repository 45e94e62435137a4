//! The broker's signing keys: generation, the public JWKS, rotation with overlap, and
//! verification of the server's own tokens from memory.
//!
//! Timeline of one key (all Unix seconds, stored with the key):
//!
//! * `published_at`: in the JWKS from here on. A successor is created `lead` seconds before
//!   its predecessor retires, so peers see it before it signs anything.
//! * `active_from`: signs from here on (the predecessor's `retire_at`).
//! * `retire_at`: signs nothing after this (`active_from` + rotation period).
//! * `remove_at`: leaves the JWKS: `retire_at` + the longest lifetime of a token it signed +
//!   leeway, so every token it signed has expired by then.
//!
//! The first key is created through [`Store::insert_first_key`], which inserts only when no
//! live key exists, so instances starting together agree on one key. A successor is created by
//! the one instance that wins a one-time marker named after its predecessor.
//!
//! One caller at a time reads the store for the ring (each store call bounded by the store, the
//! whole by [`ATTEMPT_LIMIT`]). The others do not queue behind it: they take the ring in memory
//! when it serves them (publishing, verifying a known key, signing with a key that has not
//! retired) and otherwise wait for that one read, at most [`WAIT_LIMIT`], never for one of
//! their own. After a failed read the store is left alone for
//! a jittered, growing backoff, so a database that stops answering costs each request at most
//! one store call.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::cipher::{AtRest, OpenError};
use crate::algorithm::Algorithm;
use crate::clock::{ABANDONED_AFTER_SECS, Clock, backoff_secs};
use crate::error::AuthError;
use crate::provider::{Signed, VerifyingKey};
use crate::store::{Store, StoreError, StoredKey};

/// How long a loaded key ring is used before the store is read again on the signing path.
const RING_TTL: i64 = 60;
/// Least time between two store reads forced by an unknown `kid` on the validation path.
const FORCED_RELOAD_COOLDOWN: i64 = 15;
/// The cooldown after a forced reload given up before it read the keys: short, since nothing
/// was learnt, but there, so that requests given up at once cannot read the store at the rate
/// they come in.
const UNSETTLED_COOLDOWN: i64 = 1;
/// How long an instance's claim to publish a successor key holds off the others.
const SUCCESSOR_CLAIM_SECS: i64 = 60;
/// How long a successor published late (see [`Ring::active`]) waits before it signs: longer
/// than any instance sharing the store keeps its ring without reading it again on the signing
/// path ([`RING_TTL`]), and than the default cooldowns of refetches forced by an unknown key
/// id, here and at peers, so that every verifier can have it before the first token it signs
/// arrives.
const PUBLISH_AHEAD: i64 = 2 * RING_TTL;
/// Longest time one attempt to read (and rotate) the keys may take: the store calls of a
/// rotation (read, claim, insert, read again), each bounded by the store itself. A store that
/// stops answering fails the first of them within one call's time; a slow one that still
/// answers gets to finish the rotation, which a bound of one call would cut off every time.
const ATTEMPT_LIMIT: Duration = crate::store::OPERATION_TIMEOUT.saturating_mul(4);
/// Longest time a caller with nothing usable in memory waits for another's attempt: one store
/// call, so that it answers within 5 s.
const WAIT_LIMIT: Duration = crate::store::OPERATION_TIMEOUT;
/// The longest wait for the next attempt after a failed one: the longest backoff, counted from
/// the end of an attempt that may have taken [`ATTEMPT_LIMIT`].
const LONGEST_WAIT: i64 = crate::clock::MAX_BACKOFF_SECS + ATTEMPT_LIMIT.as_secs() as i64;

/// A private signing key.
pub(crate) enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signer::Rsa(_) => "Signer(RSA)",
            Signer::Ec(_) => "Signer(EC)",
            Signer::Ed(_) => "Signer(Ed25519)",
        })
    }
}

impl Signer {
    /// A new key for `alg` and its PKCS#8 encoding.
    pub(crate) fn generate(alg: Algorithm) -> Option<(Self, Vec<u8>)> {
        let pkcs8 = match alg {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).ok()?;
                pair.as_der().ok()?.as_ref().to_vec()
            }
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .ok()?
                .to_pkcs8v1()
                .ok()?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .ok()?
                .to_pkcs8v1()
                .ok()?
                .as_ref()
                .to_vec(),
            _ => return None,
        };
        Some((Self::from_pkcs8(alg, &pkcs8)?, pkcs8))
    }

    /// Parses a PKCS#8 key for `alg`.
    pub(crate) fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Option<Self> {
        match alg {
            Algorithm::RS256 => RsaKeyPair::from_pkcs8(pkcs8).ok().map(Signer::Rsa),
            Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .ok()
                .map(Signer::Ec),
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(pkcs8).ok().map(Signer::Ed),
            _ => None,
        }
    }

    /// The JWS signature over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa(pair) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .ok()?;
                Some(out)
            }
            Signer::Ec(pair) => pair.sign(&rng, message).ok().map(|s| s.as_ref().to_vec()),
            Signer::Ed(pair) => Some(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// The public JWK members (RFC 7518), without `kid`, `alg` or `use`.
    pub(crate) fn public_members(&self) -> Map<String, Value> {
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = Map::new();
        match self {
            Signer::Rsa(pair) => {
                let public = pair.public_key();
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert(
                    "n".into(),
                    b64(public.modulus().big_endian_without_leading_zero()),
                );
                jwk.insert(
                    "e".into(),
                    b64(public.exponent().big_endian_without_leading_zero()),
                );
            }
            Signer::Ec(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), "P-256".into());
                jwk.insert("x".into(), b64(x));
                jwk.insert("y".into(), b64(y));
            }
            Signer::Ed(pair) => {
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(pair.public_key().as_ref()));
            }
        }
        jwk
    }
}

/// The RFC 7638 thumbprint of a public JWK: the key id of broker keys.
pub(crate) fn thumbprint(members: &Map<String, Value>) -> String {
    let required: &[&str] = match members.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    // Members in lexicographic order, no whitespace: what serde_json writes for a sorted map.
    let canonical: std::collections::BTreeMap<&str, &Value> = required
        .iter()
        .filter_map(|k| members.get(*k).map(|v| (*k, v)))
        .collect();
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(digest(&SHA256, text.as_bytes()).as_ref())
}

/// The associated data that binds a stored private key to its row.
fn key_row(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// One key of the ring.
pub(crate) struct RingKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) signer: Option<Arc<Signer>>,
    /// Stored in plain text while an encryption key is configured, so refused for signing.
    stored_plain: bool,
    /// Both `None` when the private key cannot be read here.
    verifier: Option<VerifyingKey>,
    jwk: Option<Value>,
    pub(crate) published_at: i64,
    pub(crate) active_from: i64,
    pub(crate) retire_at: i64,
    pub(crate) remove_at: i64,
}

/// The keys as last read from the store.
pub(crate) struct Ring {
    pub(crate) keys: Vec<RingKey>,
    /// When it was read; `i64::MIN` before the first read.
    loaded_at: i64,
    /// How far ahead of this clock another instance's may be: a key it published "later" than
    /// now verifies and is published here all the same (see [`Keys::new`]).
    skew: i64,
}

impl Ring {
    fn empty(skew: i64) -> Self {
        Self {
            keys: Vec::new(),
            loaded_at: i64::MIN,
            skew,
        }
    }

    /// The key live at `now`, whether or not its private part is usable here.
    ///
    /// When none is (a server idle through the whole time its successor would have been
    /// published in, so that the successor was published only now, to sign a little later),
    /// the key that retired last goes on signing while its tokens can still end before it
    /// leaves the JWKS (see `mint`): the successor then never signs anything before it has
    /// been published for a while, and it starts before that end (see
    /// [`Keys::publish_successor`]).
    pub(crate) fn active(&self, now: i64) -> Option<&RingKey> {
        // Of keys equally new (times are whole seconds), one this instance can sign with: a
        // replacement made in the same second as the key it replaces must win.
        self.keys
            .iter()
            .filter(|k| k.published_at <= now && k.active_from <= now && now < k.retire_at)
            .max_by_key(|k| (k.active_from, k.published_at, k.signer.is_some()))
            .or_else(|| {
                self.keys
                    .iter()
                    .filter(|k| {
                        k.signer.is_some()
                            && k.published_at <= now
                            && k.retire_at <= now
                            && now < k.remove_at.saturating_sub(self.skew)
                    })
                    .max_by_key(|k| k.retire_at)
            })
            .or_else(|| {
                // Neither: a key that another instance, its clock ahead of this one by no more
                // than the leeway, has just created to sign at once (the first key, a
                // replacement). It signs here too, rather than nothing until this clock
                // catches up.
                self.keys
                    .iter()
                    .filter(|k| {
                        k.published_at <= now.saturating_add(self.skew)
                            && k.active_from <= now.saturating_add(self.skew)
                            && now < k.retire_at
                    })
                    .min_by_key(|k| k.active_from)
            })
    }

    /// The key that signs at `now`, with its private part.
    pub(crate) fn signing(&self, now: i64) -> Option<(&RingKey, &Signer)> {
        let key = self.active(now)?;
        key.signer.as_deref().map(|s| (key, s))
    }

    /// The public JWKS at `now`: every published key that has not been removed.
    pub(crate) fn jwks(&self, now: i64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| k.published_at <= now.saturating_add(self.skew) && now < k.remove_at)
            .filter_map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// The ring's verdict: `None` when no published key has the token's `kid`.
    fn verify(&self, signed: Signed<'_>, now: i64) -> Option<Result<(), AuthError>> {
        let Some(kid) = signed.kid else {
            return Some(Err(AuthError::invalid("the token names no key")));
        };
        let key = self.keys.iter().find(|k| {
            k.kid == kid && k.published_at <= now.saturating_add(self.skew) && now < k.remove_at
        })?;
        let parsed = key.verifier.as_ref()?.for_alg(signed.alg)?;
        Some(
            parsed
                .verify_sig(signed.message, signed.signature)
                .map_err(|_| AuthError::invalid("the token signature is invalid")),
        )
    }
}

/// The pace of store reads, kept under the gate.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// Failed attempts in a row.
    failures: u32,
    /// No attempt before this time, after a failure.
    retry_at: i64,
    /// When the last reload forced by an unknown `kid` was made.
    last_forced: i64,
    /// The last forced reload was given up at once, before it read the keys (see
    /// `AbandonedAttempt`): its cooldown is [`UNSETTLED_COOLDOWN`], and within it the store
    /// could not say whether a key exists.
    unsettled: bool,
}

impl Attempts {
    /// Whether the cooldown of the last forced reload holds at `now`. A reload well "after"
    /// now was made before the clock was set back: its cooldown is over. (A request that read
    /// the clock a little before the last reload is still within it.)
    fn cooling_down(&self, now: i64) -> bool {
        let cooldown = if self.unsettled {
            UNSETTLED_COOLDOWN
        } else {
            FORCED_RELOAD_COOLDOWN
        };
        self.last_forced.saturating_sub(now) <= LONGEST_WAIT
            && now < self.last_forced.saturating_add(cooldown)
    }

    /// Whether the backoff after a failure holds off an attempt at `now`. A wait longer than
    /// any backoff is one the clock was set back under: it is over.
    fn held_off(&self, now: i64) -> bool {
        now < self.retry_at && self.retry_at.saturating_sub(now) <= LONGEST_WAIT
    }
}

/// Watches an attempt at the store, which runs in its caller's future. A caller that goes away
/// (its client, or a timeout layer) drops the attempt unfinished. If the store had kept it
/// waiting for [`ABANDONED_AFTER_SECS`], the store is taken to hang: the attempt counts as
/// failed, with its backoff from the moment it was given up, and the next caller answers 503
/// instead of queueing a call of its own. One dropped sooner puts no healthy store into
/// backoff; a forced reload among them starts only the short [`UNSETTLED_COOLDOWN`], not the
/// cooldown of a reload that read the keys (within it an unknown `kid` is 503, not 401).
struct AbandonedAttempt<'a> {
    attempts: &'a mut Attempts,
    before: Attempts,
    started: i64,
    forced: bool,
    clock: &'a dyn Clock,
    /// The attempt ended, with whatever outcome, and its caller records it.
    ended: bool,
}

impl Drop for AbandonedAttempt<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let now = self.clock.now();
        let waited = now.saturating_sub(self.started);
        if waited >= ABANDONED_AFTER_SECS {
            self.attempts.retry_at = now.saturating_add(backoff_secs(self.attempts.failures));
            tracing::warn!(
                waited_secs = waited,
                "a read of the broker signing keys was abandoned unanswered; backing off"
            );
            return;
        }
        *self.attempts = Attempts {
            last_forced: if self.forced {
                self.started
            } else {
                self.before.last_forced
            },
            unsettled: self.forced || self.before.unsettled,
            ..self.before
        };
    }
}

/// The broker's key ring and its rotation.
pub(crate) struct Keys {
    alg: Algorithm,
    period: i64,
    /// Longest lifetime of a token a key signs, plus leeway.
    overlap: i64,
    /// How long before its predecessor retires a successor is published.
    lead: i64,
    /// See [`Ring::skew`].
    skew: i64,
    at_rest: AtRest,
    ring: RwLock<Arc<Ring>>,
    /// Times the end of a failed attempt: its backoff counts from then, not from when the
    /// request that made it came in.
    clock: Arc<dyn Clock>,
    /// Held by the one attempt under way: serialises store reads and rotations.
    gate: tokio::sync::Mutex<Attempts>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("alg", &self.alg)
            .field("period", &self.period)
            .field("at_rest", &self.at_rest)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> AuthError {
    super::store_error(e)
}

impl Keys {
    ///
    /// `skew` is the clock leeway of validation: instances sharing the store may disagree on
    /// the time by that much, and a key that an instance whose clock is ahead has just
    /// published (its first key, a replacement) verifies and is published here too, rather
    /// than refusing that instance's tokens until this clock catches up.
    pub(crate) fn new(
        alg: Algorithm,
        period: i64,
        overlap: i64,
        skew: i64,
        at_rest: AtRest,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            alg,
            period,
            overlap,
            lead: (period / 4).clamp(1, 24 * 3600),
            skew,
            at_rest,
            ring: RwLock::new(Arc::new(Ring::empty(skew))),
            clock,
            gate: tokio::sync::Mutex::new(Attempts {
                failures: 0,
                retry_at: i64::MIN,
                last_forced: i64::MIN,
                unsettled: false,
            }),
        }
    }

    /// The ring in memory, without touching the store.
    pub(crate) fn current(&self) -> Arc<Ring> {
        self.ring
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn replace(&self, ring: Arc<Ring>) {
        match self.ring.write() {
            Ok(mut r) => *r = ring,
            Err(p) => *p.into_inner() = ring,
        }
    }

    /// Reads every key from the store into a new ring.
    async fn load(&self, store: &dyn Store, now: i64) -> Result<Arc<Ring>, AuthError> {
        let stored = store.list_keys().await.map_err(unavailable)?;
        let mut keys = Vec::with_capacity(stored.len());
        for key in stored {
            let Ok(alg) = key.alg.parse::<Algorithm>() else {
                tracing::warn!(kid = %key.kid, "a stored signing key has an unknown algorithm");
                continue;
            };
            let opened = self.at_rest.open(&key_row(&key.kid), &key.private_key);
            let stored_plain = matches!(opened, Err(OpenError::Plain));
            let signer = match opened {
                Ok(pkcs8) => {
                    let signer = Signer::from_pkcs8(alg, &pkcs8).map(Arc::new);
                    if signer.is_none() {
                        tracing::error!(kid = %key.kid, "a stored signing key is malformed; it neither signs nor verifies");
                    }
                    signer
                }
                // Refused for signing too; the replacement below says so once.
                Err(_) if stored_plain => None,
                Err(e) => {
                    if now < key.retire_at {
                        tracing::error!(kid = %key.kid, error = %e, "a stored signing key cannot be read; it neither signs nor verifies");
                    }
                    None
                }
            };
            // The public key is the one the private key implies, never the stored copy: with an
            // encryption key only a row sealed with it verifies anything, so someone who can
            // write the database cannot publish a key of their own.
            let jwk = signer.as_ref().map(|signer| {
                let mut members = signer.public_members();
                let stored: Option<Map<String, Value>> =
                    serde_json::from_str(&key.public_jwk).ok();
                if stored.is_none_or(|stored| thumbprint(&stored) != thumbprint(&members)) {
                    tracing::error!(kid = %key.kid, "a stored signing key's public part does not match its private key; the private key's is used");
                }
                members.insert("kid".into(), Value::String(key.kid.clone()));
                members.insert("alg".into(), Value::String(alg.as_str().to_owned()));
                members.insert("use".into(), Value::String("sig".to_owned()));
                members
            });
            let verifier = jwk
                .as_ref()
                .and_then(|members| VerifyingKey::from_jwk(members, &[alg]).ok());
            keys.push(RingKey {
                kid: key.kid,
                alg,
                signer,
                stored_plain,
                verifier,
                jwk: jwk.map(Value::Object),
                published_at: key.published_at,
                active_from: key.active_from,
                retire_at: key.retire_at,
                remove_at: key.remove_at,
            });
        }
        let ring = Arc::new(Ring {
            keys,
            loaded_at: now,
            skew: self.skew,
        });
        self.replace(ring.clone());
        Ok(ring)
    }

    /// A new key, sealed for the store, that signs from `active_from`.
    fn generate(&self, now: i64, active_from: i64) -> Result<StoredKey, AuthError> {
        let (signer, pkcs8) = Signer::generate(self.alg)
            .ok_or_else(|| AuthError::unavailable("a signing key could not be generated"))?;
        let kid = thumbprint(&signer.public_members());
        let retire_at = active_from.saturating_add(self.period);
        Ok(StoredKey {
            private_key: self.at_rest.seal(&key_row(&kid), &pkcs8)?,
            public_jwk: Value::Object(signer.public_members()).to_string(),
            alg: self.alg.as_str().to_owned(),
            kid,
            published_at: now,
            active_from,
            retire_at,
            remove_at: retire_at.saturating_add(self.overlap),
        })
    }

    fn needs_work(&self, ring: &Ring, now: i64) -> bool {
        // A ring read "after" now was read before the clock was set back: read it again.
        if now.saturating_sub(ring.loaded_at) >= RING_TTL || now < ring.loaded_at {
            return true;
        }
        match ring.signing(now) {
            None => true,
            Some((key, _)) => {
                now >= key.retire_at.saturating_sub(self.lead)
                    && !ring.keys.iter().any(|k| k.active_from >= key.retire_at)
            }
        }
    }

    /// The ring with a key that signs at `now`: creates the first key, publishes a successor
    /// when the current key nears retirement, and rereads the store when the ring is old. While
    /// the store fails, a key in memory signs until it retires.
    pub(crate) async fn for_signing(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<Arc<Ring>, AuthError> {
        let ring = self
            .refreshed(store, now, |ring| ring.signing(now).is_some())
            .await?;
        match ring.active(now) {
            Some(key) if key.signer.is_some() => Ok(ring),
            Some(_) => Err(AuthError::unavailable(
                "the broker signing key cannot be decrypted: check the encryption key",
            )),
            None => Err(AuthError::unavailable("no broker signing key is available")),
        }
    }

    /// The ring to publish at `now`: as [`for_signing`](Self::for_signing) keeps it, or while
    /// the store fails, the keys in memory.
    pub(crate) async fn for_publishing(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<Arc<Ring>, AuthError> {
        self.refreshed(store, now, |ring| !ring.keys.is_empty())
            .await
    }

    /// The ring after the work [`needs_work`](Self::needs_work) asks for, unless another caller
    /// is doing it or the last attempt failed within its backoff: then the ring in memory when
    /// it is `usable`, else an error. Only a caller with nothing usable waits, and only for the
    /// attempt under way.
    async fn refreshed(
        &self,
        store: &dyn Store,
        now: i64,
        usable: impl Fn(&Ring) -> bool,
    ) -> Result<Arc<Ring>, AuthError> {
        let mut failure = None;
        // A second round only after waiting for an attempt that succeeded but left nothing
        // usable (a reload for a verification, which creates no key): the gate is free then.
        for _ in 0..2 {
            let ring = self.current();
            if !self.needs_work(&ring, now) {
                return Ok(ring);
            }
            match self.gate.try_lock() {
                Ok(mut attempts) => {
                    let ring = self.current();
                    if !self.needs_work(&ring, now) {
                        return Ok(ring);
                    }
                    match self
                        .attempt(&mut attempts, now, false, self.rotate(store, now))
                        .await
                    {
                        Ok(ring) => return Ok(ring),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                Err(_) if usable(&ring) => return Ok(ring),
                Err(_) => match self.wait_for_attempt().await {
                    Ok(()) => {}
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
            }
        }
        let ring = self.current();
        if usable(&ring) {
            Ok(ring)
        } else {
            Err(failure.unwrap_or_else(|| store_failed(1)))
        }
    }

    /// Makes an attempt at the store with `work`, bounded by [`ATTEMPT_LIMIT`], unless the last
    /// one failed less than its backoff ago. `forced`: a reload for an unknown `kid`, which
    /// starts the cooldown of [`FORCED_RELOAD_COOLDOWN`] once made.
    async fn attempt<T>(
        &self,
        attempts: &mut Attempts,
        now: i64,
        forced: bool,
        work: impl Future<Output = Result<T, AuthError>>,
    ) -> Result<T, AuthError> {
        if attempts.held_off(now) {
            return Err(store_failed(attempts.retry_at - now));
        }
        let before = *attempts;
        // The request's `now` may be from before it waited for the gate.
        let started = self.clock.now();
        if forced {
            attempts.last_forced = started;
            attempts.unsettled = false;
        }
        // Counted as failed until it ends: an attempt whose request went away after the store
        // had kept it waiting holds off the next one too (see `AbandonedAttempt`).
        attempts.failures = attempts.failures.saturating_add(1);
        attempts.retry_at = now.saturating_add(backoff_secs(attempts.failures));
        let mut abandoned = AbandonedAttempt {
            attempts,
            before,
            started,
            forced,
            clock: &*self.clock,
            ended: false,
        };
        let result = tokio::time::timeout(ATTEMPT_LIMIT, work)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(StoreError::Unavailable(
                    "the signing keys could not be read in time".into(),
                )))
            });
        abandoned.ended = true;
        let attempts = &mut *abandoned.attempts;
        attempts.unsettled = false;
        match &result {
            Ok(_) => {
                attempts.failures = 0;
                attempts.retry_at = i64::MIN;
            }
            Err(e) => {
                let backoff = backoff_secs(attempts.failures);
                attempts.retry_at = self.clock.now().saturating_add(backoff);
                tracing::warn!(
                    error = %e,
                    retry_in_secs = backoff,
                    "the broker signing keys could not be read; the keys in memory serve meanwhile"
                );
            }
        }
        result
    }

    /// Waits for the attempt under way to end, at most [`WAIT_LIMIT`]: `Ok` when it succeeded,
    /// else the error of a caller that found nothing usable in memory.
    async fn wait_for_attempt(&self) -> Result<(), AuthError> {
        match tokio::time::timeout(WAIT_LIMIT, self.gate.lock()).await {
            Ok(attempts) if attempts.failures > 0 => Err(store_failed(
                attempts.retry_at.saturating_sub(self.clock.now()),
            )),
            // Given up before it read anything: the store could not say.
            Ok(attempts) if attempts.unsettled => Err(store_failed(1)),
            Ok(_) => Ok(()),
            Err(_) => Err(store_failed(1)),
        }
    }

    /// Reads the store, creates the first key when there is none and publishes a successor
    /// when the current key nears retirement.
    async fn rotate(&self, store: &dyn Store, now: i64) -> Result<Arc<Ring>, AuthError> {
        let mut ring = self.load(store, now).await?;
        if ring.active(now).is_none() {
            let first = self.generate(now, now)?;
            let inserted = store
                .insert_first_key(&first, now)
                .await
                .map_err(unavailable)?;
            if inserted {
                tracing::info!(kid = %first.kid, alg = %first.alg, "created a broker signing key");
            }
            ring = self.load(store, now).await?;
        }
        if let Some(current) = ring.active(now)
            && current.stored_plain
        {
            // Stored before an encryption key was configured. A private key in plain text is
            // not taken once one is (anyone who can write the store could have put it there),
            // so a sealed replacement signs from now on instead of nothing until this key
            // retires; this one neither verifies nor is published, so the tokens it signed
            // are refused and their clients refresh. Each instance that finds it makes its own
            // rather than wait for another's: a few extra published keys, once, and the newest
            // signs everywhere after the next read.
            tracing::warn!(kid = %current.kid, "the broker signing key is stored unencrypted while an encryption key is configured; it no longer signs or verifies, and a sealed replacement signs from now on");
            let replacement = self.generate(now, now)?;
            store.insert_key(&replacement).await.map_err(unavailable)?;
            tracing::info!(kid = %replacement.kid, "published a replacement broker signing key");
            ring = self.load(store, now).await?;
        }
        if let Some(current) = ring.active(now)
            && now >= current.retire_at.saturating_sub(self.lead)
            && !ring.keys.iter().any(|k| k.active_from >= current.retire_at)
        {
            // The current key still signs: a failure here is retried, and fails no request.
            let (kid, retire_at) = (current.kid.clone(), current.retire_at);
            let last_signing = current.remove_at.saturating_sub(self.skew);
            if let Err(e) = self
                .publish_successor(store, &kid, (retire_at, last_signing), now)
                .await
            {
                tracing::warn!(error = %e, "the next broker signing key could not be published; another attempt follows within a minute");
            }
            ring = self.load(store, now).await?;
        }
        Ok(ring)
    }

    /// Publishes the successor of key `kid`, unless another instance claimed that within the
    /// last minute. `(retire_at, last_signing)`: when key `kid` retires, and the last moment it
    /// may sign at all (see [`Ring::active`]). The successor signs from `retire_at`; when that
    /// is less than [`PUBLISH_AHEAD`] away (or past: a server idle through the lead), from that
    /// long after now, but never after `last_signing`, so that some key always signs. The
    /// claim expires so that a failed or interrupted attempt is made again long before the key
    /// retires (`lead` ahead); a second successor from a slow attempt is harmless, as both are
    /// published before they sign.
    async fn publish_successor(
        &self,
        store: &dyn Store,
        kid: &str,
        (retire_at, last_signing): (i64, i64),
        now: i64,
    ) -> Result<(), AuthError> {
        let marker = digest(&SHA256, format!("successor of {kid}").as_bytes());
        let mut marker_key = [0u8; 32];
        marker_key.copy_from_slice(marker.as_ref());
        let claimed = store
            .consume_once(&marker_key, now.saturating_add(SUCCESSOR_CLAIM_SECS), now)
            .await
            .map_err(unavailable)?;
        if claimed {
            let active_from = retire_at.max(now.saturating_add(PUBLISH_AHEAD).min(last_signing));
            let successor = self.generate(now, active_from)?;
            store.insert_key(&successor).await.map_err(unavailable)?;
            tracing::info!(kid = %successor.kid, active_from, "published the next broker signing key");
        }
        Ok(())
    }

    /// Verifies a token of this server with the ring in memory, without waiting: `None` when
    /// its `kid` is not in the ring, so that only a reload from the store can decide.
    pub(crate) fn verify_now(&self, signed: Signed<'_>, now: i64) -> Option<Result<(), AuthError>> {
        self.current().verify(signed, now)
    }

    /// Verifies a token of this server from the ring in memory. Only an unknown `kid` reads
    /// the store, at most once per cooldown and not within the backoff after a failure. When
    /// the store cannot be read (or the backoff after a failed read holds off another), the
    /// answer is 503: the key may be one another instance has published meanwhile. While
    /// another caller reads the store, this one waits for that read instead of making its own.
    pub(crate) async fn verify(
        &self,
        store: &dyn Store,
        signed: Signed<'_>,
        now: i64,
    ) -> Result<(), AuthError> {
        if let Some(verdict) = self.verify_now(signed, now) {
            return verdict;
        }
        let missing = || AuthError::invalid("no published key matches the token");
        // Why the store could not say whether the key exists, when it could not. A second round
        // only after waiting for another caller's attempt that read the store and left the key
        // unknown: a forced reload started the cooldown, which then answers; a rotation did not,
        // and this caller reloads. (An attempt given up before it read anything answers the
        // waiters 503, see `wait_for_attempt`.)
        let mut failure = None;
        for _ in 0..2 {
            let Ok(mut attempts) = self.gate.try_lock() else {
                match self.wait_for_attempt().await {
                    Ok(()) if self.current().verify(signed, now).is_none() => continue,
                    Ok(()) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            };
            let ring = self.current();
            if let Some(result) = ring.verify(signed, now) {
                return result;
            }
            let never_loaded = ring.loaded_at == i64::MIN;
            if !never_loaded && attempts.cooling_down(now) {
                // Within the cooldown the last read decides: the key was not there, or the
                // store could not say.
                return Err(if attempts.failures > 0 {
                    store_failed(attempts.retry_at.saturating_sub(now).max(1))
                } else if attempts.unsettled {
                    store_failed(1)
                } else {
                    missing()
                });
            }
            // A reload the backoff refuses does not start the cooldown (see `attempt`).
            match self
                .attempt(&mut attempts, now, true, self.load(store, now))
                .await
            {
                Ok(ring) => return ring.verify(signed, now).unwrap_or_else(|| Err(missing())),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let ring = self.current();
        match (ring.verify(signed, now), failure) {
            (Some(result), _) => result,
            (None, Some(failure)) => Err(failure),
            (None, None) if ring.loaded_at == i64::MIN => Err(store_failed(1)),
            (None, None) => Err(missing()),
        }
    }
}

/// The answer while the store cannot be read: 503, to be retried after `retry_after` seconds
/// (at least 1, at most [`LONGEST_WAIT`]).
fn store_failed(retry_after: i64) -> AuthError {
    AuthError::unavailable("the session store is unavailable")
        .with_retry_after(u64::try_from(retry_after.clamp(1, LONGEST_WAIT)).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_its_jwk_verifies() {
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let Some((signer, pkcs8)) = Signer::generate(alg) else {
                panic!("{alg:?} key generation failed");
            };
            let reparsed = Signer::from_pkcs8(alg, &pkcs8);
            assert!(reparsed.is_some(), "{alg:?} PKCS#8 does not parse back");
            let mut jwk = signer.public_members();
            jwk.insert("alg".into(), alg.as_str().into());
            let verifier = VerifyingKey::from_jwk(&jwk, &[alg]);
            let Ok(verifier) = verifier else {
                panic!("{alg:?} public JWK is not accepted");
            };
            let signature = signer.sign(b"message").unwrap_or_default();
            let key = verifier.for_alg(alg);
            assert!(key.is_some_and(|k| k.verify_sig(b"message", &signature).is_ok()));
            assert!(key.is_some_and(|k| k.verify_sig(b"other", &signature).is_err()));
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 section 3.1.
        let jwk: Map<String, Value> = serde_json::from_value(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap_or_default();
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
