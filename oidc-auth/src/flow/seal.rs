//! The login transaction, sealed into the last segment of `state`.
//!
//! py-oidc-auth put the PKCE verifier in plain text into `state`. Here the last `|` segment is an
//! AES-256-GCM sealed handle: it carries the verifier, the nonce, the redirect URI and an expiry,
//! it cannot be read or forged without the server's key, and it is accepted once. The client
//! sends it back as `code_verifier`; the server opens it and sends the real verifier to the
//! provider.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AuthError;

const VERSION: u8 = 1;
/// Used handles remembered at most; beyond it, expired entries are dropped first.
const MAX_REMEMBERED: usize = 100_000;

/// What a login transaction needs at the token or callback step.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Transaction {
    pub(crate) id: [u8; 16],
    pub(crate) expires_at: i64,
    /// The PKCE verifier the server generated; empty when the client brought its own challenge.
    pub(crate) verifier: String,
    /// The client's own S256 challenge, when it brought one.
    pub(crate) client_challenge: Option<String>,
    pub(crate) nonce: String,
    pub(crate) redirect_uri: String,
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
    used: Mutex<HashMap<[u8; 16], i64>>,
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
        let key = key.unwrap_or_else(random::<32>);
        let key = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256-GCM accepts any 32-byte key");
        Self {
            key: LessSafeKey::new(key),
            used: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn seal(&self, tx: &Transaction) -> String {
        let mut plain = Vec::with_capacity(128 + tx.redirect_uri.len());
        plain.push(VERSION);
        plain.extend_from_slice(&tx.id);
        plain.extend_from_slice(&tx.expires_at.to_be_bytes());
        for field in [
            tx.verifier.as_str(),
            tx.client_challenge.as_deref().unwrap_or(""),
            tx.nonce.as_str(),
            tx.redirect_uri.as_str(),
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
    /// or not, goes through here before the provider is contacted.
    pub(crate) fn consume(&self, tx: &Transaction, now: i64) -> Result<(), AuthError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= MAX_REMEMBERED {
            used.retain(|_, expires| *expires > now);
        }
        if used.contains_key(&tx.id) {
            return Err(invalid());
        }
        used.insert(tx.id, tx.expires_at);
        Ok(())
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
    let mut fields = Vec::with_capacity(4);
    for _ in 0..4 {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_owned();
        fields.push(value);
        rest = &rest[2 + len..];
    }
    let redirect_uri = fields.pop()?;
    let nonce = fields.pop()?;
    let challenge = fields.pop()?;
    let verifier = fields.pop()?;
    Some(Transaction {
        id,
        expires_at,
        verifier,
        client_challenge: (!challenge.is_empty()).then_some(challenge),
        nonce,
        redirect_uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> Transaction {
        Transaction {
            id: [7; 16],
            expires_at: 1_000,
            verifier: "v".repeat(43),
            client_challenge: None,
            nonce: "n0nce".into(),
            redirect_uri: "http://localhost:53100/callback".into(),
        }
    }

    #[test]
    fn a_sealed_transaction_opens_to_itself() {
        let sealer = Sealer::new(None);
        let handle = sealer.seal(&tx());
        assert_eq!(sealer.open(&handle, 999).ok(), Some(tx()));
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
}
