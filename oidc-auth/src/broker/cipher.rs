//! Encryption of secrets at rest: AES-256-GCM with the row's key as associated data, so a
//! ciphertext copied into another row does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

use crate::config::OidcConfig;
use crate::error::{AuthError, ErrorKind};
use crate::flow::seal::try_random;

/// First byte of a stored value: how the rest is to be read.
const PLAIN: u8 = 0;
const SEALED: u8 = 1;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("the stored value is encrypted and no encryption key is configured")]
    NoKey,
    #[error("the stored value does not decrypt with the configured key (wrong key or row)")]
    Mismatch,
    #[error("the stored value is plain text but an encryption key is configured")]
    Plain,
    #[error("the stored value is malformed")]
    Malformed,
}

/// Seals and opens values stored by broker mode.
pub(crate) struct AtRest {
    key: Option<LessSafeKey>,
    /// Keys used before `key`: they open what they sealed, and seal nothing.
    previous: Vec<LessSafeKey>,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRest")
            .field("encrypts", &self.key.is_some())
            .field("previous_keys", &self.previous.len())
            .finish()
    }
}

/// The configured encryption key and the previous ones, decoded (configuration checked them).
/// [`AtRest::configured`] seals with them; sessions use them with a fallback of their own.
pub(crate) fn configured_keys(config: &OidcConfig) -> (Option<[u8; 32]>, Vec<[u8; 32]>) {
    let key = config
        .encryption_key
        .as_ref()
        .and_then(|k| crate::config::decode_key(k.expose()));
    let previous = config
        .previous_encryption_keys
        .iter()
        .filter_map(|k| crate::config::decode_key(k.expose()))
        .collect();
    (key, previous)
}

impl AtRest {
    /// Encrypts with `key`; stores plain text when `None`.
    #[cfg(test)]
    pub(crate) fn new(key: Option<[u8; 32]>) -> Self {
        Self::with_previous(key, &[])
    }

    /// Encrypts with `key` (plain text when `None`), and opens what `key` or one of
    /// `previous` sealed.
    pub(crate) fn with_previous(key: Option<[u8; 32]>, previous: &[[u8; 32]]) -> Self {
        let aead = |k: &[u8; 32]| {
            LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, k).expect("AES-256-GCM accepts any 32-byte key"),
            )
        };
        Self {
            key: key.as_ref().map(aead),
            previous: previous
                .iter()
                .filter(|k| Some(**k) != key)
                .map(aead)
                .collect(),
        }
    }

    /// Seals with the configured encryption key and opens with it or a previous one: signing
    /// keys and the stored copies of peers' keys.
    pub(crate) fn configured(config: &OidcConfig) -> Self {
        let (key, previous) = configured_keys(config);
        Self::with_previous(key, &previous)
    }

    /// Whether values are sealed (an encryption key is configured), not stored in plain text.
    pub(crate) fn encrypts(&self) -> bool {
        self.key.is_some()
    }

    /// A key derived from `secret` (HKDF-SHA256) for `purpose`.
    ///
    /// # Panics
    ///
    /// Never in practice: HKDF-SHA256 yields up to 8160 bytes, and 32 are asked. A key of
    /// zeros, which going on after a failure would mean, is no key.
    pub(crate) fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
        let prk = Salt::new(HKDF_SHA256, b"oidc-auth at-rest key").extract(secret);
        let mut out = [0u8; 32];
        let info = [purpose.as_bytes()];
        prk.expand(&info, HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF-SHA256 yields a 32-byte key");
        out
    }

    /// The stored form of `plain` for the row `row`; 500 when no random nonce can be had or
    /// encryption fails, so that a value meant to be sealed is never stored in the clear.
    pub(crate) fn seal(&self, row: &str, plain: &[u8]) -> Result<Vec<u8>, AuthError> {
        let Some(key) = &self.key else {
            let mut out = Vec::with_capacity(plain.len() + 1);
            out.push(PLAIN);
            out.extend_from_slice(plain);
            return Ok(out);
        };
        let nonce_bytes = try_random::<NONCE_LEN>()?;
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(row.as_bytes()),
            &mut body,
        )
        .map_err(|_| {
            tracing::error!("encrypting a stored value failed");
            AuthError::new(
                ErrorKind::Misconfigured,
                "the server could not encrypt a stored value",
            )
        })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEALED);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The plain value of a stored value of row `row`: opened with the key, or else with a
    /// previous key.
    pub(crate) fn open(&self, row: &str, stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        match (stored.first(), &self.key) {
            (Some(&PLAIN), None) => Ok(stored[1..].to_vec()),
            (Some(&PLAIN), Some(_)) => Err(OpenError::Plain),
            (Some(&SEALED), None) if self.previous.is_empty() => Err(OpenError::NoKey),
            (Some(&SEALED), key) => {
                if stored.len() < 1 + NONCE_LEN + 16 {
                    return Err(OpenError::Malformed);
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&stored[1..1 + NONCE_LEN]);
                key.iter()
                    .chain(&self.previous)
                    .find_map(|key| {
                        let mut body = stored[1 + NONCE_LEN..].to_vec();
                        key.open_in_place(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(row.as_bytes()),
                            &mut body,
                        )
                        .ok()
                        .map(|plain| plain.to_vec())
                    })
                    .ok_or(OpenError::Mismatch)
            }
            _ => Err(OpenError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_row() {
        let at_rest = AtRest::new(Some([7; 32]));
        let sealed = at_rest
            .seal("session:a", b"provider-refresh-token")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !sealed
                .windows(b"provider-refresh-token".len())
                .any(|w| w == b"provider-refresh-token")
        );
        assert_eq!(
            at_rest.open("session:a", &sealed).ok().as_deref(),
            Some(&b"provider-refresh-token"[..])
        );
        assert!(matches!(
            at_rest.open("session:b", &sealed),
            Err(OpenError::Mismatch)
        ));
        let other = AtRest::new(Some([8; 32]));
        assert!(matches!(
            other.open("session:a", &sealed),
            Err(OpenError::Mismatch)
        ));
        assert!(matches!(
            AtRest::new(None).open("session:a", &sealed),
            Err(OpenError::NoKey)
        ));
    }

    /// After a key change, what the previous key sealed still opens (in its row only), and new
    /// values are sealed with the new key alone; without the previous key listed it does not
    /// open. Previous keys also open with no current key (encryption switched off).
    #[test]
    fn previous_keys_open_what_they_sealed_and_seal_nothing() {
        let old = AtRest::new(Some([7; 32]));
        let sealed = old
            .seal("session:a", b"provider-refresh-token")
            .unwrap_or_else(|e| panic!("{e}"));
        let changed = AtRest::with_previous(Some([8; 32]), &[[6; 32], [7; 32]]);
        assert_eq!(
            changed.open("session:a", &sealed).ok().as_deref(),
            Some(&b"provider-refresh-token"[..])
        );
        assert!(matches!(
            changed.open("session:b", &sealed),
            Err(OpenError::Mismatch)
        ));
        let resealed = changed
            .seal("session:a", b"next")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            old.open("session:a", &resealed),
            Err(OpenError::Mismatch)
        ));
        assert_eq!(
            AtRest::new(Some([8; 32]))
                .open("session:a", &resealed)
                .ok()
                .as_deref(),
            Some(&b"next"[..])
        );
        assert!(matches!(
            AtRest::new(Some([8; 32])).open("session:a", &sealed),
            Err(OpenError::Mismatch)
        ));
        let off = AtRest::with_previous(None, &[[7; 32]]);
        assert_eq!(
            off.open("session:a", &sealed).ok().as_deref(),
            Some(&b"provider-refresh-token"[..])
        );
    }

    #[test]
    fn plain_values_are_marked_and_refused_once_a_key_exists() {
        let plain = AtRest::new(None)
            .seal("key:k", b"pkcs8")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain[0], PLAIN);
        assert_eq!(
            AtRest::new(None).open("key:k", &plain).ok().as_deref(),
            Some(&b"pkcs8"[..])
        );
        assert!(matches!(
            AtRest::new(Some([1; 32])).open("key:k", &plain),
            Err(OpenError::Plain)
        ));
        assert!(matches!(
            AtRest::new(None).open("key:k", &[]),
            Err(OpenError::Malformed)
        ));
        assert!(matches!(
            AtRest::new(Some([1; 32])).open("key:k", &[SEALED, 1, 2]),
            Err(OpenError::Malformed)
        ));
    }

    #[test]
    fn derived_keys_depend_on_secret_and_purpose() {
        let a = AtRest::derive(b"secret", "sessions");
        assert_eq!(a, AtRest::derive(b"secret", "sessions"));
        assert_ne!(a, AtRest::derive(b"secret", "keys"));
        assert_ne!(a, AtRest::derive(b"other", "sessions"));
    }
}
