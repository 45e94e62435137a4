//! The login transaction, sealed into the last segment of `state`.
//!
//! py-oidc-auth put the PKCE verifier in plain text into `state`. Here the last `|` segment is an
//! AES-256-GCM sealed handle: it carries the verifier, the nonce, the redirect URI and an expiry,
//! it cannot be read or forged without the server's key, and it is accepted once. The client
//! sends it back as `code_verifier`; the server opens it and sends the real verifier to the
//! provider.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AuthError;
use crate::secret::Secret;

const VERSION: u8 = 2;
/// Used, unexpired handles remembered at most (about 5 MB). A handle must be remembered until
/// it expires, so when this many are, further redemptions wait (503) rather than forget one.
const MAX_REMEMBERED: usize = 200_000;

/// What a login transaction needs at the token or callback step. Its verifier, challenge and
/// nonce are [`Secret`]s: they compare only in constant time, and never with `==`.
#[derive(Clone)]
pub(crate) struct Transaction {
    pub(crate) id: [u8; 16],
    pub(crate) expires_at: i64,
    /// The PKCE verifier the server generated; empty when the client brought its own challenge.
    pub(crate) verifier: Secret,
    /// The client's own S256 challenge, when it brought one.
    pub(crate) client_challenge: Option<Secret>,
    pub(crate) nonce: Secret,
    pub(crate) redirect_uri: String,
    /// The scope asked of the provider: what a broker session may claim when the provider's
    /// answer names none.
    pub(crate) scope: String,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("expires_at", &self.expires_at)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Seals and opens transactions, and remembers which ones were used.
pub(crate) struct Sealer {
    key: LessSafeKey,
    used: Mutex<Used>,
}

/// The used handles that have not expired: their ids, and the same ids by expiry so that the
/// expired ones leave in order, each at O(log n).
struct Used {
    ids: HashSet<[u8; 16]>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 16])>>,
    capacity: usize,
}

impl Used {
    fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            by_expiry: BinaryHeap::new(),
            capacity,
        }
    }

    /// Records `id` as used until `expires_at`; false if it already was.
    fn insert(&mut self, id: [u8; 16], expires_at: i64, now: i64) -> Result<bool, AuthError> {
        while let Some(Reverse((expiry, old))) = self.by_expiry.peek()
            && *expiry <= now
        {
            self.ids.remove(old);
            self.by_expiry.pop();
        }
        if self.ids.contains(&id) {
            return Ok(false);
        }
        if self.ids.len() >= self.capacity {
            let wait = self
                .by_expiry
                .peek()
                .map_or(1, |Reverse((expiry, _))| expiry.saturating_sub(now));
            tracing::warn!(
                remembered = self.ids.len(),
                "too many unexpired login states were redeemed; refusing more until the oldest expire"
            );
            return Err(
                AuthError::unavailable("too many sign-ins at once; try again later")
                    .with_retry_after(u64::try_from(wait).unwrap_or(1)),
            );
        }
        self.ids.insert(id);
        self.by_expiry.push(Reverse((expires_at, id)));
        Ok(true)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG does not fail on supported platforms; a zero buffer would only make the
    // value predictable, so refuse to continue silently.
    if rand::fill(&mut out).is_err() {
        tracing::error!("the system random number generator failed");
    }
    out
}

fn invalid() -> AuthError {
    AuthError::oauth(
        "invalid_grant",
        "the login state is invalid, expired or already used",
    )
}

impl Sealer {
    /// A sealer with `key`, or a random key (valid for this process only) when `None`.
    pub(crate) fn new(key: Option<[u8; 32]>) -> Self {
        Self::remembering(key, MAX_REMEMBERED)
    }

    fn remembering(key: Option<[u8; 32]>, capacity: usize) -> Self {
        let key = key.unwrap_or_else(random::<32>);
        let key = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256-GCM accepts any 32-byte key");
        Self {
            key: LessSafeKey::new(key),
            used: Mutex::new(Used::new(capacity)),
        }
    }

    pub(crate) fn seal(&self, tx: &Transaction) -> String {
        let mut plain = Vec::with_capacity(128 + tx.redirect_uri.len());
        plain.push(VERSION);
        plain.extend_from_slice(&tx.id);
        plain.extend_from_slice(&tx.expires_at.to_be_bytes());
        for field in [
            tx.verifier.expose(),
            tx.client_challenge.as_ref().map_or("", Secret::expose),
            tx.nonce.expose(),
            tx.redirect_uri.as_str(),
            tx.scope.as_str(),
        ] {
            plain.extend_from_slice(&(field.len().min(u16::MAX as usize) as u16).to_be_bytes());
            plain.extend_from_slice(&field.as_bytes()[..field.len().min(u16::MAX as usize)]);
        }
        let nonce_bytes = random::<NONCE_LEN>();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        if self
            .key
            .seal_in_place_append_tag(nonce, Aad::empty(), &mut plain)
            .is_err()
        {
            tracing::error!("sealing the login state failed");
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&plain);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a handle without consuming it.
    pub(crate) fn open(&self, handle: &str, now: i64) -> Result<Transaction, AuthError> {
        if handle.is_empty() || handle.len() > 4096 {
            return Err(invalid());
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(handle).map_err(|_| invalid())?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(invalid());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let sealed = &mut bytes[NONCE_LEN..];
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), sealed)
            .map_err(|_| invalid())?;
        let tx = decode(plain).ok_or_else(invalid)?;
        if now >= tx.expires_at {
            return Err(AuthError::oauth(
                "invalid_grant",
                "the login state has expired",
            ));
        }
        Ok(tx)
    }

    /// Marks a transaction used; fails if it already was. Every redemption attempt, successful
    /// or not, goes through here before the provider is contacted. A transaction is remembered
    /// until it expires (it cannot be opened after), and no longer.
    pub(crate) fn consume(&self, tx: &Transaction, now: i64) -> Result<(), AuthError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.insert(tx.id, tx.expires_at, now)? {
            Ok(())
        } else {
            Err(invalid())
        }
    }
}

fn decode(plain: &[u8]) -> Option<Transaction> {
    let (&version, rest) = plain.split_first()?;
    if version != VERSION || rest.len() < 24 {
        return None;
    }
    let id: [u8; 16] = rest[..16].try_into().ok()?;
    let expires_at = i64::from_be_bytes(rest[16..24].try_into().ok()?);
    let mut rest = &rest[24..];
    let mut fields = Vec::with_capacity(5);
    for _ in 0..5 {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_owned();
        fields.push(value);
        rest = &rest[2 + len..];
    }
    let scope = fields.pop()?;
    let redirect_uri = fields.pop()?;
    let nonce = fields.pop()?;
    let challenge = fields.pop()?;
    let verifier = fields.pop()?;
    Some(Transaction {
        id,
        expires_at,
        verifier: Secret::new(verifier),
        client_challenge: (!challenge.is_empty()).then(|| Secret::new(challenge)),
        nonce: Secret::new(nonce),
        redirect_uri,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> Transaction {
        Transaction {
            id: [7; 16],
            expires_at: 1_000,
            verifier: Secret::new("v".repeat(43)),
            client_challenge: None,
            nonce: Secret::new("n0nce"),
            redirect_uri: "http://localhost:53100/callback".into(),
            scope: "openid profile".into(),
        }
    }

    #[test]
    fn debug_of_a_transaction_shows_no_verifier_nonce_or_challenge() {
        let mut tx = tx();
        tx.client_challenge = Some(Secret::new("ch4llenge"));
        let shown = format!("{tx:?}");
        for secret in ["vvvv", "n0nce", "ch4llenge", "[7, 7"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("http://localhost:53100/callback"), "{shown}");
    }

    #[test]
    fn a_sealed_transaction_opens_to_itself() {
        let sealer = Sealer::new(None);
        let handle = sealer.seal(&tx());
        let opened = sealer.open(&handle, 999).expect("the handle opens");
        let shown = |t: &Transaction| {
            (
                t.id,
                t.expires_at,
                t.verifier.expose().to_owned(),
                t.client_challenge.as_ref().map(|c| c.expose().to_owned()),
                t.nonce.expose().to_owned(),
                t.redirect_uri.clone(),
                t.scope.clone(),
            )
        };
        assert_eq!(shown(&opened), shown(&tx()));
        assert!(!handle.contains(&"v".repeat(43)));
    }

    #[test]
    fn tampered_foreign_and_expired_handles_are_refused() {
        let sealer = Sealer::new(None);
        let handle = sealer.seal(&tx());
        let mut bytes = URL_SAFE_NO_PAD.decode(&handle).unwrap_or_default();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(sealer.open(&URL_SAFE_NO_PAD.encode(&bytes), 0).is_err());
        assert!(Sealer::new(None).open(&handle, 0).is_err());
        assert!(sealer.open(&handle, 1_000).is_err());
        assert!(sealer.open("not a handle", 0).is_err());
    }

    #[test]
    fn a_transaction_is_consumed_once() {
        let sealer = Sealer::new(None);
        assert!(sealer.consume(&tx(), 0).is_ok());
        assert!(sealer.consume(&tx(), 0).is_err());
    }

    fn remembered(sealer: &Sealer) -> usize {
        let used = sealer.used.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(used.ids.len(), used.by_expiry.len());
        used.ids.len()
    }

    fn tx_with(id: u8, expires_at: i64) -> Transaction {
        Transaction {
            id: [id; 16],
            expires_at,
            ..tx()
        }
    }

    /// Used transactions are forgotten once expired, whatever the order they were redeemed
    /// in: the memory follows the unexpired ones, not every redemption ever made.
    #[test]
    fn used_transactions_are_forgotten_when_they_expire() {
        let sealer = Sealer::remembering(None, 10);
        for (id, expires_at) in [(1, 300), (2, 100), (3, 200)] {
            assert!(sealer.consume(&tx_with(id, expires_at), 50).is_ok());
        }
        assert_eq!(remembered(&sealer), 3);
        assert!(sealer.consume(&tx_with(4, 400), 150).is_ok());
        assert_eq!(remembered(&sealer), 3, "2 expired at 100");
        assert!(sealer.consume(&tx_with(3, 200), 199).is_err(), "3 is live");
        assert!(sealer.consume(&tx_with(5, 500), 300).is_ok());
        assert_eq!(remembered(&sealer), 2, "1 and 3 expired");
    }

    /// At capacity with every remembered transaction still live, a new redemption is refused
    /// with 503 and Retry-After until the earliest expires; none is forgotten early, so a
    /// replay is still caught.
    #[test]
    fn a_full_set_of_live_transactions_refuses_instead_of_forgetting() {
        let sealer = Sealer::remembering(None, 2);
        assert!(sealer.consume(&tx_with(1, 130), 100).is_ok());
        assert!(sealer.consume(&tx_with(2, 160), 100).is_ok());
        let full = sealer.consume(&tx_with(3, 190), 110);
        let full = full.err().unwrap_or_else(|| panic!("refused when full"));
        assert_eq!(full.status(), 503);
        assert_eq!(full.retry_after(), Some(20));
        assert!(
            sealer.consume(&tx_with(1, 130), 110).is_err(),
            "a replay is still refused"
        );
        assert!(sealer.consume(&tx_with(3, 190), 130).is_ok(), "1 expired");
        assert_eq!(remembered(&sealer), 2);
    }
}
