//! One JWK turned into parsed verification keys, each bound to the algorithms it may verify.

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;

/// A usable public key from a JWKS: its `kid` and, per algorithm it may verify, the parsed key.
///
/// The algorithm comes from the key: its `alg` if present, else its type and curve. An RSA key
/// without `alg` verifies the RSA algorithms that are accepted; an EC or OKP key exactly one.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    /// The public key as parsed (DER or raw point), to tell whether a refreshed set still
    /// publishes this very key.
    material: Box<[u8]>,
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field(
                "algorithms",
                &self.parsed.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a JWK was skipped (logged at debug, never fatal for the rest of the set).
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("not a signature key (`use` or `key_ops`)")]
    NotForSignatures,
    #[error("unsupported key type or curve")]
    Unsupported,
    #[error("`alg` is not accepted or does not fit the key type")]
    AlgorithmMismatch,
    #[error("malformed key parameters")]
    Malformed,
    #[error("key rejected (too small, or an invalid point)")]
    Rejected,
}

impl VerifyingKey {
    pub(crate) fn from_jwk(
        jwk: &Map<String, Value>,
        accepted: &[Algorithm],
    ) -> Result<Self, KeyError> {
        if let Some(use_) = jwk.get("use")
            && use_.as_str() != Some("sig")
        {
            return Err(KeyError::NotForSignatures);
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(KeyError::NotForSignatures);
            }
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(KeyError::Malformed),
        };
        let declared = match jwk.get("alg") {
            None => None,
            Some(Value::String(alg)) => {
                let alg: Algorithm = alg.parse().map_err(|_| KeyError::AlgorithmMismatch)?;
                if !accepted.contains(&alg) {
                    return Err(KeyError::AlgorithmMismatch);
                }
                Some(alg)
            }
            Some(_) => return Err(KeyError::Malformed),
        };
        let kty = jwk
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(KeyError::Malformed)?;
        let crv = jwk.get("crv").and_then(Value::as_str);
        let (der, algs): (Vec<u8>, Vec<Algorithm>) = match (kty, crv) {
            ("RSA", _) => {
                let n = b64_param(jwk, "n")?;
                let e = b64_param(jwk, "e")?;
                let bits = n.iter().position(|b| *b != 0).map_or(0, |first| {
                    (n.len() - first) * 8 - n[first].leading_zeros() as usize
                });
                if !(2048..=8192).contains(&bits) || !is_usable_rsa_public_key(&n, &e) {
                    return Err(KeyError::Rejected);
                }
                let algs = match declared {
                    Some(a) if a.is_rsa() => vec![a],
                    Some(_) => return Err(KeyError::AlgorithmMismatch),
                    None => accepted.iter().copied().filter(|a| a.is_rsa()).collect(),
                };
                (rsa_public_key_der(&n, &e), algs)
            }
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let (alg, len) = if curve == "P-256" {
                    (Algorithm::ES256, 32)
                } else {
                    (Algorithm::ES384, 48)
                };
                if declared.is_some_and(|d| d != alg) || !accepted.contains(&alg) {
                    return Err(KeyError::AlgorithmMismatch);
                }
                let x = b64_param(jwk, "x")?;
                let y = b64_param(jwk, "y")?;
                if x.len() != len || y.len() != len {
                    return Err(KeyError::Malformed);
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (point, vec![alg])
            }
            ("OKP", Some("Ed25519")) => {
                if declared.is_some_and(|d| d != Algorithm::EdDSA)
                    || !accepted.contains(&Algorithm::EdDSA)
                {
                    return Err(KeyError::AlgorithmMismatch);
                }
                let x = b64_param(jwk, "x")?;
                if x.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                if is_small_order_ed25519(&x) {
                    return Err(KeyError::Rejected);
                }
                (x, vec![Algorithm::EdDSA])
            }
            _ => return Err(KeyError::Unsupported),
        };
        let mut parsed = Vec::with_capacity(algs.len());
        for alg in algs {
            let key = ParsedPublicKey::new(verification_algorithm(alg), &der)
                .map_err(|_| KeyError::Rejected)?;
            parsed.push((alg, key));
        }
        if parsed.is_empty() {
            return Err(KeyError::AlgorithmMismatch);
        }
        Ok(Self {
            kid,
            material: der.into(),
            parsed,
        })
    }

    /// Whether `other` is this key: the same kid, key material and algorithms.
    pub(crate) fn is_same_key(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.material == other.material
            && self.parsed.len() == other.parsed.len()
            && self
                .parsed
                .iter()
                .zip(&other.parsed)
                .all(|((a, _), (b, _))| a == b)
    }

    /// The parsed key for `alg`, if this key may verify it.
    pub(crate) fn for_alg(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.parsed.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }
}

fn verification_algorithm(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    // RSA key sizes are checked when the JWK is read; these parameters check them again at
    // verification.
    match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
    }
}

fn b64_param(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    let value = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or(KeyError::Malformed)?;
    if value.len() > 2048 {
        return Err(KeyError::Malformed);
    }
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| KeyError::Malformed)
}

/// An odd modulus, and an odd public exponent of 3 to 2^33 - 1 (the exponents RSA verifiers
/// accept). `e = 1` would make every "signature" its own padded message, so anybody could
/// forge one; an even `e` or `n` is no RSA key.
fn is_usable_rsa_public_key(n: &[u8], e: &[u8]) -> bool {
    let first = e.iter().position(|b| *b != 0).unwrap_or(e.len());
    let e = &e[first..];
    if e.is_empty() || e.len() > 5 {
        return false;
    }
    let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (3..(1 << 33)).contains(&e) && e % 2 == 1 && n.last().is_some_and(|b| b % 2 == 1)
}

/// DER of a PKCS#1 `RSAPublicKey`: `SEQUENCE { INTEGER n, INTEGER e }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        let bytes = &bytes[start.min(bytes.len())..];
        let mut content = Vec::with_capacity(bytes.len() + 1);
        if bytes.first().is_none_or(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(bytes);
        tlv(0x02, &content)
    }
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(bytes.len() - 1);
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }
    let mut seq = integer(n);
    seq.extend(integer(e));
    tlv(0x30, &seq)
}

/// Encodings of the Ed25519 points of small order (and their non-canonical aliases), compared
/// without the sign bit. A JWKS key equal to one of them would let forged signatures verify.
fn is_small_order_ed25519(x: &[u8]) -> bool {
    const P_MINUS_1: [u8; 32] = {
        let mut b = [0xff; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    };
    const P: [u8; 32] = {
        let mut b = P_MINUS_1;
        b[0] = 0xed;
        b
    };
    const P_PLUS_1: [u8; 32] = {
        let mut b = P_MINUS_1;
        b[0] = 0xee;
        b
    };
    const ZERO: [u8; 32] = [0; 32];
    const ONE: [u8; 32] = {
        let mut b = [0; 32];
        b[0] = 1;
        b
    };
    const ORDER8_A: [u8; 32] = [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ];
    const ORDER8_B: [u8; 32] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];
    let Ok(x) = <[u8; 32]>::try_from(x) else {
        return false;
    };
    let mut y = x;
    y[31] &= 0x7f;
    [ZERO, ONE, ORDER8_A, ORDER8_B, P_MINUS_1, P, P_PLUS_1].contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integer_gets_a_leading_zero_when_the_high_bit_is_set() {
        let der = rsa_public_key_der(&[0x80, 0x01], &[0x01, 0x00, 0x01]);
        assert_eq!(
            der,
            vec![
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
    }

    #[test]
    fn identity_point_is_small_order() {
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(is_small_order_ed25519(&one));
        one[31] = 0x80;
        assert!(is_small_order_ed25519(&one));
    }

    /// A 2048-bit modulus ending in `last` (odd) for the exponent checks, base64url.
    fn modulus(last: u8) -> String {
        let mut n = vec![0xc5u8; 256];
        n[255] = last;
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, n)
    }

    fn rsa(n: &str, e: &str) -> Result<VerifyingKey, KeyError> {
        let jwk = serde_json::json!({"kty": "RSA", "n": n, "e": e});
        VerifyingKey::from_jwk(jwk.as_object().unwrap_or(&Map::new()), &Algorithm::ALL)
    }

    /// SECURITY A19 variant: RSA keys with a public exponent of 1 (every signature would be its
    /// own padded message), an even exponent, an exponent too large, or an even modulus are
    /// never loaded; `e` = 3 and 65537 are.
    #[test]
    fn weak_rsa_public_parameters_are_rejected() {
        let odd = modulus(0x01);
        for e in [
            "AQ",
            "AAAB",
            "Ag",
            "AQAA",
            "AAAAAAAAAQ",
            "AQAAAAAB",
            "",
            "AA",
        ] {
            assert!(
                matches!(rsa(&odd, e), Err(KeyError::Rejected | KeyError::Malformed)),
                "e = {e}"
            );
        }
        assert!(matches!(
            rsa(&modulus(0x02), "AQAB"),
            Err(KeyError::Rejected)
        ));
        for e in ["AQAB", "Aw", "AAEAAQ"] {
            assert!(rsa(&odd, e).is_ok(), "e = {e}");
        }
    }

    #[test]
    fn encryption_keys_are_skipped() {
        let jwk = serde_json::json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"});
        let err = VerifyingKey::from_jwk(jwk.as_object().unwrap_or(&Map::new()), &Algorithm::ALL)
            .unwrap_err();
        assert!(matches!(err, KeyError::NotForSignatures));
    }
}
