//! Building blocks for hand-made JOSE values: base64url, hex, compact-JWS signatures, DER and
//! PEM encodings, big-endian integer products and PKCS#1 v1.5 encodings.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::Harness;
use oidc_auth::testing::{Endpoint, MockProvider};
use serde_json::Value;

/// The DER `DigestInfo` prefix of a SHA-256 hash (RFC 8017 section 9.2).
pub const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; panics on anything else.
pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// Decodes a hex string; panics on anything else.
pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The signing input of a compact JWS and its decoded signature.
pub fn split_signature(token: &str) -> (&str, Vec<u8>) {
    let (input, signature) = token.rsplit_once('.').expect("a compact JWS");
    (input, unb64(signature))
}

/// `token` with its signature replaced.
pub fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = split_signature(token);
    format!("{input}.{}", b64(signature))
}

/// How many JWKS requests the harness's provider has answered.
pub fn jwks_hits(h: &Harness) -> usize {
    h.idp.hits(Endpoint::Jwks)
}

/// A DER element with a definite length.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
pub fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let trimmed = &bytes[start..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der(0x02, &content)
}

/// `-----BEGIN label-----` armour with 64-character lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Big-endian product.
pub fn big_mul(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut acc = vec![0u64; a.len() + b.len()];
    for (i, x) in a.iter().rev().enumerate() {
        for (j, y) in b.iter().rev().enumerate() {
            acc[i + j] += u64::from(*x) * u64::from(*y);
        }
    }
    let mut carry = 0u64;
    let mut out: Vec<u8> = acc
        .into_iter()
        .map(|limb| {
            let total = limb + carry;
            carry = total >> 8;
            (total & 0xff) as u8
        })
        .collect();
    assert_eq!(carry, 0);
    out.reverse();
    out
}

/// EMSA-PKCS1-v1_5 of `message` for a `len`-byte modulus: `00 01 FF.. 00 DigestInfo`.
pub fn pkcs1_encode(message: &[u8], len: usize) -> Vec<u8> {
    let mut digest_info = SHA256_DIGEST_INFO.to_vec();
    digest_info.extend_from_slice(digest::digest(&digest::SHA256, message).as_ref());
    let mut em = vec![0x00, 0x01];
    em.resize(len - digest_info.len() - 1, 0xff);
    em.push(0x00);
    em.extend(digest_info);
    em
}

/// The JWK with this kid as `idp` publishes it, fetched like any client would (so it counts as
/// one JWKS hit at `idp`).
pub async fn published_jwk(client: &reqwest::Client, idp: &MockProvider, kid: &str) -> Value {
    let jwks: Value = client
        .get(idp.jwks_uri())
        .send()
        .await
        .expect("JWKS reachable")
        .json()
        .await
        .expect("JWKS is JSON");
    jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .cloned()
        .expect("the kid is published")
}

/// The JWK's RSA modulus and exponent, big-endian.
pub fn rsa_components(jwk: &Value) -> (Vec<u8>, Vec<u8>) {
    let param = |name: &str| unb64(jwk[name].as_str().expect("RSA parameter"));
    (param("n"), param("e"))
}

/// The RSA public key of `jwk` as DER: its PKCS#1 `RSAPublicKey` and its SPKI.
pub fn rsa_public_der(jwk: &Value) -> (Vec<u8>, Vec<u8>) {
    let (n, e) = rsa_components(jwk);
    let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let rsa_encryption = hex("06092a864886f70d0101010500");
    let spki = der(
        0x30,
        &[
            der(0x30, &rsa_encryption),
            der(0x03, &[&[0u8][..], &pkcs1].concat()),
        ]
        .concat(),
    );
    (pkcs1, spki)
}
