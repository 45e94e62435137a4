//! Signing keys of the mock provider: generation, JWK export and JWS signing.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A JWS signing algorithm the [`MockProvider`](super::MockProvider) can hold keys for.
///
/// RSA algorithms use 2048-bit keys, `ES256`/`ES384` use P-256/P-384, `EdDSA` uses Ed25519.
///
/// ```no_run
/// use oidc_auth::testing::{MockProvider, SigningAlg};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockProvider::start_with_alg(SigningAlg::ES256).await?;
/// let token = provider.token().sign();
/// assert_eq!(SigningAlg::ES256.as_str(), "ES256");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256 (64-byte `r || s` signature).
    ES256,
    /// ECDSA on P-384 with SHA-384 (96-byte `r || s` signature).
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// The JOSE name of the algorithm, as written in a JWS `alg` header.
    ///
    /// ```
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// assert_eq!(SigningAlg::PS384.as_str(), "PS384");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Base64url without padding, the encoding of every JOSE binary field.
pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Material {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One private key with its kid and algorithm.
pub(super) struct SigningKey {
    kid: String,
    alg: SigningAlg,
    material: Material,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key with a random kid.
    ///
    /// Key generation only fails when the system RNG or aws-lc itself is broken, which a test
    /// cannot recover from, hence the `expect`s.
    pub(super) fn generate(alg: SigningAlg) -> Self {
        let material = match alg {
            SigningAlg::RS256 => rsa(&signature::RSA_PKCS1_SHA256),
            SigningAlg::RS384 => rsa(&signature::RSA_PKCS1_SHA384),
            SigningAlg::RS512 => rsa(&signature::RSA_PKCS1_SHA512),
            SigningAlg::PS256 => rsa(&signature::RSA_PSS_SHA256),
            SigningAlg::PS384 => rsa(&signature::RSA_PSS_SHA384),
            SigningAlg::PS512 => rsa(&signature::RSA_PSS_SHA512),
            SigningAlg::ES256 => Material::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("MockProvider: aws-lc-rs failed to generate a P-256 key"),
            ),
            SigningAlg::ES384 => Material::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("MockProvider: aws-lc-rs failed to generate a P-384 key"),
            ),
            SigningAlg::EdDSA => Material::Ed(
                Ed25519KeyPair::generate()
                    .expect("MockProvider: aws-lc-rs failed to generate an Ed25519 key"),
            ),
        };
        Self {
            kid: random_kid(),
            alg,
            material,
        }
    }

    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Signs `message` and returns the raw JWS signature bytes.
    pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            Material::Rsa(key, padding) => {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(*padding, &rng, message, &mut sig)
                    .expect("MockProvider: RSA signing failed");
                sig
            }
            Material::Ec(key) => key
                .sign(&rng, message)
                .expect("MockProvider: ECDSA signing failed")
                .as_ref()
                .to_vec(),
            Material::Ed(key) => key.sign(message).as_ref().to_vec(),
        }
    }

    /// The public half as a JWK (`use: sig`, with `kid` and `alg`).
    pub(super) fn public_jwk(&self) -> Value {
        let mut jwk = match &self.material {
            Material::Rsa(key, _) => {
                let (n, e) = rsa_public_components(key.public_key().as_ref())
                    .expect("MockProvider: aws-lc-rs returned a malformed RSAPublicKey");
                json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
            }
            Material::Ec(key) => {
                // Uncompressed SEC1 point: 0x04 || x || y, both coordinates the same length.
                let point = key.public_key().as_ref();
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                let crv = if self.alg == SigningAlg::ES384 {
                    "P-384"
                } else {
                    "P-256"
                };
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            Material::Ed(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())})
            }
        };
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), Value::from(self.kid.as_str()));
            obj.insert("alg".into(), Value::from(self.alg.as_str()));
            obj.insert("use".into(), Value::from("sig"));
        }
        jwk
    }
}

fn rsa(padding: &'static dyn signature::RsaEncoding) -> Material {
    let key = RsaKeyPair::generate(KeySize::Rsa2048)
        .expect("MockProvider: aws-lc-rs failed to generate an RSA-2048 key");
    Material::Rsa(key, padding)
}

/// 16 random hex characters.
fn random_kid() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes).expect("MockProvider: the system random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` into
/// its two integers, big-endian without leading zero bytes (the JWK form).
///
/// Parsed by hand so the JWK export does not depend on aws-lc-rs's optional `ring-io` accessors.
fn rsa_public_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, _) = der_element(der, 0x30)?;
    let (n, rest) = der_element(seq, 0x02)?;
    let (e, _) = der_element(rest, 0x02)?;
    Some((strip_leading_zeros(n), strip_leading_zeros(e)))
}

/// Reads one DER element with the expected tag; returns its contents and the bytes after it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<usize>() || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, tail @ ..] = bytes {
        if tail.is_empty() {
            break;
        }
        bytes = tail;
    }
    bytes
}

/// Every key the provider ever made, which of them are published, which one is current, and the
/// raw JWKS entries a test asked for.
#[derive(Debug)]
pub(super) struct KeyRing {
    /// Insertion order is JWKS order.
    entries: Vec<Entry>,
    current: Arc<SigningKey>,
    raw: Vec<Value>,
}

#[derive(Debug)]
struct Entry {
    key: Arc<SigningKey>,
    published: bool,
}

impl KeyRing {
    pub(super) fn new(first: SigningKey) -> Self {
        let first = Arc::new(first);
        Self {
            entries: vec![Entry {
                key: Arc::clone(&first),
                published: true,
            }],
            current: first,
            raw: Vec::new(),
        }
    }

    /// Publishes `key`, optionally making it the current signing key; returns its kid.
    pub(super) fn insert(&mut self, key: SigningKey, make_current: bool) -> String {
        let key = Arc::new(key);
        if make_current {
            self.current = Arc::clone(&key);
        }
        let kid = key.kid().to_owned();
        self.entries.push(Entry {
            key,
            published: true,
        });
        kid
    }

    /// Replaces the current key (every entry with its kid) by a new key of `alg` with the
    /// same kid, made current; returns the kid.
    pub(super) fn replace_current(&mut self, alg: SigningAlg) -> String {
        let mut key = SigningKey::generate(alg);
        key.kid = self.current.kid().to_owned();
        let kid = key.kid.clone();
        self.entries.retain(|entry| entry.key.kid() != kid);
        self.insert(key, true)
    }

    /// Unpublishes every JWKS entry (generated or raw) with this kid; the key can still sign.
    pub(super) fn retire(&mut self, kid: &str) {
        for entry in &mut self.entries {
            if entry.key.kid() == kid {
                entry.published = false;
            }
        }
        self.raw
            .retain(|jwk| jwk.get("kid").and_then(Value::as_str) != Some(kid));
    }

    pub(super) fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.current)
    }

    /// Any key ever generated, published or retired.
    pub(super) fn get(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.entries
            .iter()
            .find(|entry| entry.key.kid() == kid)
            .map(|entry| Arc::clone(&entry.key))
    }

    pub(super) fn push_raw(&mut self, jwk: Value) {
        self.raw.push(jwk);
    }

    /// The JWKS document: published keys in the order they were added, then raw entries.
    pub(super) fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .published()
            .map(SigningKey::public_jwk)
            .chain(self.raw.iter().cloned())
            .collect();
        json!({ "keys": keys })
    }

    /// The distinct algorithms of the published keys, in order of first appearance.
    pub(super) fn published_algs(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = Vec::new();
        for key in self.published() {
            let alg = key.alg().as_str();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }

    fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.entries
            .iter()
            .filter(|entry| entry.published)
            .map(|entry| entry.key.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_parser_reads_long_form_lengths_and_strips_sign_bytes() {
        // SEQUENCE (long-form length 0x81 0x09) { INTEGER 00 ff, INTEGER 01 00 01 }
        let der = [
            0x30, 0x81, 0x09, 0x02, 0x02, 0x00, 0xff, 0x02, 0x03, 0x01, 0x00, 0x01,
        ];
        assert_eq!(
            rsa_public_components(&der),
            Some((&[0xff][..], &[0x01, 0x00, 0x01][..]))
        );
    }

    #[test]
    fn der_parser_rejects_truncated_input() {
        assert_eq!(rsa_public_components(&[0x30, 0x05, 0x02, 0x01]), None);
    }

    #[test]
    fn kids_are_sixteen_hex_chars_and_unique() {
        let a = random_kid();
        let b = random_kid();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn rsa_modulus_has_no_leading_zero_and_is_256_bytes() {
        let key = SigningKey::generate(SigningAlg::RS256);
        let jwk = key.public_jwk();
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(n.len(), 256);
        assert_ne!(n.first(), Some(&0));
        assert_eq!(jwk["e"], "AQAB");
    }
}
