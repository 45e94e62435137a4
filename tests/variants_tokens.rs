//! Variants of SECURITY.md groups A-C (bearer tokens, registered claims, scopes and claim
//! constraints) beyond the listed cases, on both frameworks.
//!
//! Most forgeries here are signed for real, over the exact bytes sent: raw JSON text (duplicate
//! member names, escaped names, number spellings `serde_json::Value` cannot express) signed with
//! the mock provider's key through `sign_raw`, and non-canonical base64url signed with a published
//! Ed25519 key of the test's own. So a lax parser or decoder would answer 200, and only the rule
//! under test stands between the token and the handler. Every refusal is also checked for echoes
//! of the token and for the optional route (`/feed`), which must see no user.

use std::cmp::Ordering;
use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as aws_sig, Ed25519KeyPair, KeyPair as _, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use oidc_auth::testing::{MockProvider, SigningAlg, TokenBuilder};
use oidc_auth::{Clock, ErrorKind, ManualClock, SystemClock};
use oidc_auth_tests::jose::{
    b64, big_mul, der, der_uint, hex, jwks_hits, pkcs1_encode, published_jwk, split_signature,
    unb64, with_signature,
};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, Reply, assert_invalid_token, assert_not_echoed,
    into_reply,
};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEEWAY: i64 = 60;

// ---------------------------------------------------------------------------------------------
// Helpers: raw JSON, signing, requests with raw header bytes, assertions.

fn now() -> i64 {
    SystemClock.now()
}

/// A JSON string literal for `value`, as serde_json writes it.
fn js(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

/// A JSON string literal spelling every character of the ASCII `value` as a `\uXXXX` escape.
fn escaped(value: &str) -> String {
    let body: String = value
        .chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect();
    format!("\"{body}\"")
}

/// A JSON object written member by member: names are inserted verbatim between quotes (so they
/// may hold escapes) and values are raw JSON text. Duplicate names stay duplicated.
#[derive(Clone, Debug, Default)]
struct RawJson(Vec<(String, String)>);

impl RawJson {
    /// Appends a member, even if the name is already present.
    fn push(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }

    /// Removes every member spelled `name`.
    fn without(mut self, name: &str) -> Self {
        self.0.retain(|(n, _)| n != name);
        self
    }

    /// Replaces every member spelled `name` with one, at the end.
    fn with(self, name: &str, value: impl Into<String>) -> Self {
        self.without(name).push(name, value)
    }

    fn text(&self) -> String {
        let members: Vec<String> = self
            .0
            .iter()
            .map(|(name, value)| format!("\"{name}\":{value}"))
            .collect();
        format!("{{{}}}", members.join(","))
    }
}

/// The header the provider writes for its current (RS256) key.
fn provider_header(h: &Harness) -> RawJson {
    RawJson::default()
        .push("alg", js("RS256"))
        .push("typ", js("JWT"))
        .push("kid", js(&h.idp.current_kid()))
}

/// Claims that pass every registered-claim check of the harness at `now`.
fn valid_claims(h: &Harness, now: i64) -> RawJson {
    RawJson::default()
        .push("iss", js(&h.idp.issuer()))
        .push("sub", js("alice"))
        .push("aud", js(AUDIENCE))
        .push("iat", now.to_string())
        .push("exp", (now + 3600).to_string())
}

/// `header` and `claims` as written, signed by the provider's current key.
fn sign(h: &Harness, header: &RawJson, claims: &RawJson) -> String {
    h.idp.sign_raw(
        header.text().as_bytes(),
        claims.text().as_bytes(),
        &h.idp.current_kid(),
    )
}

/// Valid claims at `now` edited by `edit`, with the provider's header.
fn signed_claims(h: &Harness, now: i64, edit: impl FnOnce(RawJson) -> RawJson) -> String {
    sign(h, &provider_header(h), &edit(valid_claims(h, now)))
}

fn token(h: &Harness) -> TokenBuilder {
    h.idp.token().audience(AUDIENCE)
}

/// A harness whose validation clock stands still at the current second.
async fn fixed_clock(leeway: u64) -> (Harness, i64) {
    let now = now();
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(
        idp,
        |b| b.leeway(Duration::from_secs(leeway)),
        Some(ManualClock::new(now)),
    )
    .await;
    (h, now)
}

/// An Ed25519 key of the test's own, published in the provider's JWKS, that signs any signing
/// input text (non-canonical base64url included).
struct OwnKey {
    pair: Ed25519KeyPair,
    kid: &'static str,
}

impl OwnKey {
    fn publish(idp: &MockProvider, kid: &'static str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("an Ed25519 key");
        idp.publish_raw_jwk(json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": b64(pair.public_key().as_ref()),
        }));
        Self { pair, kid }
    }

    fn header(&self) -> RawJson {
        RawJson::default()
            .push("alg", js("EdDSA"))
            .push("typ", js("JWT"))
            .push("kid", js(self.kid))
    }

    fn signature(&self, input: &str) -> Vec<u8> {
        self.pair.sign(input.as_bytes()).as_ref().to_vec()
    }

    /// `input "." b64url(signature over input)`.
    fn sign_input(&self, input: &str) -> String {
        format!("{input}.{}", b64(self.signature(input)))
    }
}

const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A base64url decoder that accepts padding and non-zero trailing bits: what a lax verifier uses.
fn lax_decode(text: &str) -> Vec<u8> {
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&alphabet::URL_SAFE, config)
        .decode(text)
        .expect("lax base64url")
}

/// `segment` with a non-zero trailing bit in its last character: a lax decoder reads the same
/// bytes, a strict one refuses it.
fn with_trailing_bits(segment: &str) -> String {
    assert_ne!(segment.len() % 4, 0, "the segment has trailing bits");
    let (head, last) = segment.split_at(segment.len() - 1);
    let index = URL_ALPHABET
        .iter()
        .position(|c| *c == last.as_bytes()[0])
        .expect("a base64url character");
    assert_eq!(index & 1, 0, "canonical trailing bits are zero");
    let spoiled = format!("{head}{}", URL_ALPHABET[index | 1] as char);
    assert_eq!(lax_decode(&spoiled), lax_decode(segment));
    spoiled
}

/// An `Authorization` header with exactly these bytes.
fn authorization(value: impl AsRef<[u8]>) -> (&'static str, HeaderValue) {
    (
        "authorization",
        HeaderValue::from_bytes(value.as_ref()).expect("a header value the client can send"),
    )
}

/// The same request on both frameworks; they must agree on status, challenge and error code.
async fn both_with(h: &Harness, path: &str, headers: &[(&'static str, HeaderValue)]) -> Reply {
    let axum = h.get_with(Framework::Axum, path, headers).await;
    let actix = h.get_with(Framework::Actix, path, headers).await;
    assert_eq!(
        (axum.status, &axum.challenge, axum.error()),
        (actix.status, &actix.challenge, actix.error()),
        "axum and actix-web disagree: {axum:?} / {actix:?}"
    );
    axum
}

/// The optional route sees no user with these headers, on both frameworks.
async fn assert_anonymous(h: &Harness, headers: &[(&'static str, HeaderValue)], what: &str) {
    for fw in FRAMEWORKS {
        let reply = h.get_with(fw, "/feed", headers).await;
        assert_eq!(
            (reply.status, &reply.body),
            (200, &json!({"authenticated": false})),
            "{what} on {fw:?}: the optional route saw a user"
        );
    }
}

/// Both frameworks answer 401 `invalid_token` without echoing; `/feed` sees no user.
async fn assert_refused(h: &Harness, path: &str, token: &str, markers: &[&str], what: &str) {
    let reply = h.bearer_both(path, token).await;
    assert_eq!(reply.status, 401, "{what}: {reply:?}");
    assert_invalid_token(&reply);
    assert_not_echoed(&reply, token, markers);
    assert_anonymous(h, &[authorization(format!("Bearer {token}"))], what).await;
}

/// Both frameworks answer 200.
async fn assert_accepted(h: &Harness, path: &str, token: &str, what: &str) -> Reply {
    let reply = h.bearer_both(path, token).await;
    assert_eq!(reply.status, 200, "{what}: {reply:?}");
    reply
}

/// Both frameworks answer 403 with `error`; for `insufficient_scope` the challenge names the
/// route's scope. Nothing of the token or `markers` is echoed.
async fn assert_forbidden(
    h: &Harness,
    path: &str,
    token: &str,
    error: &str,
    markers: &[&str],
    what: &str,
) {
    let reply = h.bearer_both(path, token).await;
    assert_eq!(reply.status, 403, "{what}: {reply:?}");
    assert_eq!(reply.error(), Some(error), "{what}: {reply:?}");
    if error == "insufficient_scope" {
        let challenge = reply.challenge.as_deref().unwrap_or_default();
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"admin\""),
            "{what}: {challenge}"
        );
    }
    assert_not_echoed(&reply, token, markers);
}

/// RFC 7515 section 4 / RFC 7519 section 4: a duplicate member name is refused, or the lexically
/// last member is used. Both frameworks answer 401 `invalid_token` or 200, nothing else.
async fn assert_refused_or_accepted(h: &Harness, path: &str, token: &str, what: &str) -> Reply {
    let reply = h.bearer_both(path, token).await;
    match reply.status {
        200 => {}
        401 => assert_invalid_token(&reply),
        _ => panic!("{what}: only 401 or 200 are acceptable: {reply:?}"),
    }
    assert_not_echoed(&reply, token, &[]);
    reply
}

/// Never a grant: 401 (refused as ambiguous) or 403 (resolved to a value that does not satisfy
/// the route). Never 200 or 5xx.
async fn assert_never_granted(h: &Harness, path: &str, token: &str, what: &str) {
    let reply = h.bearer_both(path, token).await;
    match reply.status {
        401 => assert_invalid_token(&reply),
        403 => assert!(
            matches!(reply.error(), Some("insufficient_scope" | "access_denied")),
            "{what}: {reply:?}"
        ),
        _ => panic!("{what}: must be refused (401) or forbidden (403): {reply:?}"),
    }
    assert_not_echoed(&reply, token, &[]);
}

/// 401 `invalid_token` or 400 `invalid_request` (a malformed header), never anything else.
fn assert_refused_or_malformed(reply: &Reply, what: &str) {
    match reply.status {
        400 => assert_eq!(reply.error(), Some("invalid_request"), "{what}: {reply:?}"),
        401 => assert_invalid_token(reply),
        _ => panic!("{what}: only 400 or 401 are acceptable: {reply:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: signature bytes, a little DER and big-integer arithmetic, hand-made RSA keys.

/// The order n of the P-384 group.
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
/// The field prime p of P-384 (larger than n).
const P384_P: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff";

/// The number of significant bits of the big-endian `bytes`.
fn bit_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|b| *b != 0).map_or(0, |first| {
        (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize
    })
}

/// Big-endian `a + b` or `a - b` in `a.len() + 1` bytes (so a sum never overflows); panics on
/// underflow.
fn big_add_sub(a: &[u8], b: &[u8], subtract: bool) -> Vec<u8> {
    assert!(b.len() <= a.len(), "operands in order");
    let mut out = [&[0u8][..], a].concat();
    let mut carry = 0i32;
    for i in 0..out.len() {
        let at = out.len() - 1 - i;
        let other = b.len().checked_sub(i + 1).map_or(0, |k| i32::from(b[k]));
        let other = if subtract { -other } else { other };
        let total = i32::from(out[at]) + other + carry;
        out[at] = total.rem_euclid(256) as u8;
        carry = total.div_euclid(256);
    }
    assert_eq!(carry, 0, "big integer underflow");
    out
}

/// An RSA public key with e = 3 and a modulus of exactly `bits` bits, made for one encoded
/// message `em`: with `n = s³ − em` and `n ≤ s³ < 2n`, `s³ mod n = em`, so `s` is a genuine
/// signature of `em` under `(n, 3)`. `n` is not a product of two primes, but verification
/// cannot tell; this lets a test sign with a key of any size, which aws-lc-rs cannot generate
/// (it only makes 2048, 3072, 4096 and 8192-bit RSA keys).
struct CubeKey {
    n: Vec<u8>,
    signature: Vec<u8>,
}

impl CubeKey {
    fn new(em: &[u8], bits: usize) -> Self {
        let len = em.len();
        assert_eq!(len, bits.div_ceil(8), "the encoding has the modulus length");
        // s = c * 2^m with c³ in [2^r, 2^(r+1)) puts s³ in [2^(bits-1), 2^bits), far enough
        // above 2^(bits-1) that subtracting a PKCS#1 encoding (< 2^(8 len - 15)) keeps all bits.
        let (m, r) = ((bits - 1) / 3, (bits - 1) % 3);
        let below: &[usize] = match r {
            0 => &[3],
            1 => &[1],
            _ => &[1, 2],
        };
        let mut s = vec![0u8; len];
        for bit in below.iter().map(|d| m - d).chain([m]) {
            s[len - 1 - bit / 8] |= 1 << (bit % 8);
        }
        // An odd n: s odd exactly when em is even.
        if em[len - 1] & 1 == 0 {
            s[len - 1] |= 1;
        }
        let cube = big_mul(&big_mul(&s, &s), &s);
        let (high, low) = cube.split_at(cube.len() - len);
        assert!(high.iter().all(|b| *b == 0), "s³ fits the modulus length");
        let n = big_add_sub(low, em, true)[1..].to_vec();
        assert_eq!(bit_len(&n), bits, "n has exactly {bits} bits");
        Self { n, signature: s }
    }

    /// The public JWK, optionally without `alg` (then it may verify any RSA algorithm).
    fn jwk(&self, kid: &str, alg: Option<&str>) -> Value {
        let mut jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&self.n), "e": "Aw"});
        if let Some(alg) = alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    /// Whether aws-lc-rs itself accepts `sig` over `message` under this key with `params`: the
    /// hand-made signature is genuine.
    fn verifies(
        &self,
        params: &'static aws_sig::RsaParameters,
        message: &[u8],
        sig: &[u8],
    ) -> bool {
        let key = RsaPublicKeyComponents {
            n: &self.n[..],
            e: &[3u8][..],
        };
        key.verify(params, message, sig).is_ok()
    }
}

/// Claims that pass every registered-claim check of a harness on `idp` at `now`.
fn idp_claims(idp: &MockProvider, now: i64) -> RawJson {
    RawJson::default()
        .push("iss", js(&idp.issuer()))
        .push("sub", js("alice"))
        .push("aud", js(AUDIENCE))
        .push("iat", now.to_string())
        .push("exp", (now + 3600).to_string())
}

/// An RS256 token for `idp` (header kid `kid`, or none), signed by a fresh [`CubeKey`] of
/// `bits` bits; returns the token and the key to publish.
fn cube_signed(idp: &MockProvider, kid: Option<&str>, bits: usize) -> (String, CubeKey) {
    let mut header = RawJson::default()
        .push("alg", js("RS256"))
        .push("typ", js("JWT"));
    if let Some(kid) = kid {
        header = header.push("kid", js(kid));
    }
    let input = format!(
        "{}.{}",
        b64(header.text()),
        b64(idp_claims(idp, now()).text())
    );
    let key = CubeKey::new(&pkcs1_encode(input.as_bytes(), bits.div_ceil(8)), bits);
    // aws-lc-rs's legacy parameters verify keys from 1024 bits up.
    let legacy = &aws_sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY;
    assert!(
        key.verifies(legacy, input.as_bytes(), &key.signature),
        "a genuine {bits}-bit RS256 signature"
    );
    let token = format!("{input}.{}", b64(&key.signature));
    (token, key)
}

/// Big-endian comparison, leading zeros ignored.
fn big_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|b| *b == 0).collect() };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// Big-endian `a / 2`.
fn big_half(a: &[u8]) -> Vec<u8> {
    let mut carry = 0u8;
    a.iter()
        .map(|b| {
            let half = (b >> 1) | carry;
            carry = (b & 1) << 7;
            half
        })
        .collect()
}

/// The integer cube root of `t`, rounded down (bit by bit).
fn cube_root(t: &[u8]) -> Vec<u8> {
    let bits = bit_len(t).div_ceil(3) + 1;
    let mut s = vec![0u8; bits.div_ceil(8)];
    let last = s.len() - 1;
    for bit in (0..bits).rev() {
        s[last - bit / 8] |= 1 << (bit % 8);
        if big_cmp(&big_mul(&big_mul(&s, &s), &s), t) == Ordering::Greater {
            s[last - bit / 8] &= !(1 << (bit % 8));
        }
    }
    s
}

/// MGF1 (RFC 8017 appendix B.2.1) over `seed` with `hash`, `len` bytes.
fn mgf1(hash: &'static digest::Algorithm, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.output_len());
    let mut counter = 0u32;
    while out.len() < len {
        let mut context = digest::Context::new(hash);
        context.update(seed);
        context.update(&counter.to_be_bytes());
        out.extend_from_slice(context.finish().as_ref());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// How an EMSA-PSS encoding (RFC 8017 section 9.1.1) is made; the default for a hash is the
/// correct JWA one (RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash).
#[derive(Clone, Copy)]
struct Pss {
    /// For mHash and H.
    hash: &'static digest::Algorithm,
    mgf: &'static digest::Algorithm,
    salt_len: usize,
    trailer: u8,
    /// M' starts with eight zero bytes.
    zero_prefix: bool,
    /// The byte between PS and the salt in DB.
    separator: u8,
    /// A non-zero byte inside PS.
    spoiled_ps: bool,
    /// The leftmost bit of EM is set (for a 2048-bit modulus, emBits = 2047 asks it clear).
    top_bit_set: bool,
}

impl Pss {
    fn new(hash: &'static digest::Algorithm) -> Self {
        Self {
            hash,
            mgf: hash,
            salt_len: hash.output_len(),
            trailer: 0xbc,
            zero_prefix: true,
            separator: 0x01,
            spoiled_ps: false,
            top_bit_set: false,
        }
    }

    /// EM for `message` and a modulus of `8 * em_len` bits.
    fn encode(&self, message: &[u8], em_len: usize) -> Vec<u8> {
        let h_len = self.hash.output_len();
        let m_hash = digest::digest(self.hash, message);
        let salt: Vec<u8> = (0..self.salt_len)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
            .collect();
        let mut m_prime = if self.zero_prefix {
            vec![0u8; 8]
        } else {
            Vec::new()
        };
        m_prime.extend_from_slice(m_hash.as_ref());
        m_prime.extend_from_slice(&salt);
        let h = digest::digest(self.hash, &m_prime);
        let db_len = em_len - h_len - 1;
        let mut db = vec![0u8; db_len - self.salt_len - 1];
        if self.spoiled_ps {
            db[10] = 0x42;
        }
        db.push(self.separator);
        db.extend_from_slice(&salt);
        for (byte, mask) in db.iter_mut().zip(mgf1(self.mgf, h.as_ref(), db_len)) {
            *byte ^= mask;
        }
        if self.top_bit_set {
            db[0] |= 0x80;
        } else {
            db[0] &= 0x7f;
        }
        [db, h.as_ref().to_vec(), vec![self.trailer]].concat()
    }
}

impl CubeKey {
    /// A key of exactly `8 * em.len()` bits for any `em` below 2^(8 len), top bit set or not:
    /// n is aimed at the middle of `[max(2^(8 len - 1), em + 1), 2^(8 len))` and s is the cube
    /// root of n + em.
    fn around(em: &[u8]) -> Self {
        let len = em.len();
        // 2^(8 len) and 2^(8 len - 1), in len + 1 bytes.
        let mut top = vec![0u8; len + 1];
        top[0] = 1;
        let mut half = vec![0u8; len + 1];
        half[1] = 0x80;
        let low = if big_cmp(em, &half) == Ordering::Less {
            half
        } else {
            big_add_sub(&[&[0u8][..], em].concat(), &[1], false)[1..].to_vec()
        };
        let target = big_half(&big_add_sub(&top, &low, false));
        let mut s = cube_root(&big_add_sub(&target, em, false));
        // An odd n: s odd exactly when em is even.
        if s[s.len() - 1] & 1 == em[len - 1] & 1 {
            s = big_add_sub(&s, &[1], false);
        }
        let cube = big_mul(&big_mul(&s, &s), &s);
        let n = big_add_sub(&cube, em, true);
        assert!(
            bit_len(&n) == 8 * len && big_cmp(&n, em) == Ordering::Greater,
            "n has {} bits and exceeds em",
            8 * len
        );
        assert!(s.len() <= len, "s fits the modulus length");
        let mut signature = vec![0u8; len - s.len()];
        signature.extend(s);
        Self {
            n: n[n.len() - len..].to_vec(),
            signature,
        }
    }
}

/// A token for `idp` with header `alg` and `kid`, signed by a fresh 2048-bit [`CubeKey`] over
/// the EMSA-PSS encoding `pss` makes of its signing input.
fn pss_signed(idp: &MockProvider, alg: &str, kid: &str, pss: &Pss) -> (String, String, CubeKey) {
    let header = RawJson::default()
        .push("alg", js(alg))
        .push("typ", js("JWT"))
        .push("kid", js(kid));
    let input = format!(
        "{}.{}",
        b64(header.text()),
        b64(idp_claims(idp, now()).text())
    );
    let key = CubeKey::around(&pss.encode(input.as_bytes(), 256));
    let token = format!("{input}.{}", b64(&key.signature));
    (token, input, key)
}

// ---------------------------------------------------------------------------------------------
// A. JOSE parsing

/// A15 variant (duplicate member names in the JOSE header): `{"alg":"RS256",...,"alg":"none"}` and
/// the same for `kid` and `typ`, also with the second name spelled as a JSON escape (`al\u0067`).
/// RFC 7515 section 4 allows refusing such a header or taking the lexically last member; a parser
/// that takes the first would accept these correctly signed tokens. Proves every duplicate whose
/// last value is unacceptable is refused on both frameworks, and one whose last value is fine is
/// refused or accepted, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a15_variant_duplicate_header_members_never_resolve_to_the_first() {
    let h = Harness::start().await;
    let claims = valid_claims(&h, now());
    let kid = h.idp.current_kid();
    let header = || provider_header(&h);

    let last_unacceptable = [
        ("alg RS256 then none", header().push("alg", js("none"))),
        ("alg RS256 then HS256", header().push("alg", js("HS256"))),
        ("alg RS256 then rs256", header().push("alg", js("rs256"))),
        (
            "alg RS256 then escaped-name none",
            header().push(r"al\u0067", js("none")),
        ),
        (
            "kid then an unpublished kid",
            header().push("kid", js("zz-unpublished-kid")),
        ),
        ("kid then null", header().push("kid", "null")),
        (
            "typ JWT then logout+jwt",
            header().push("typ", js("logout+jwt")),
        ),
        (
            "typ JWT then escaped-name logout+jwt",
            header().push(r"\u0074yp", js("logout+jwt")),
        ),
    ];
    for (what, head) in &last_unacceptable {
        assert_refused(&h, "/me", &sign(&h, head, &claims), &[], what).await;
    }

    let last_acceptable = [
        (
            "alg none then RS256",
            RawJson::default()
                .push("alg", js("none"))
                .push("typ", js("JWT"))
                .push("kid", js(&kid))
                .push("alg", js("RS256")),
        ),
        (
            "kid unpublished then the real one",
            header()
                .without("kid")
                .push("kid", js("zz-unpublished-kid"))
                .push("kid", js(&kid)),
        ),
        (
            "typ logout+jwt then JWT",
            header()
                .without("typ")
                .push("typ", js("logout+jwt"))
                .push("typ", js("JWT")),
        ),
    ];
    for (what, head) in &last_acceptable {
        assert_refused_or_accepted(&h, "/me", &sign(&h, head, &claims), what).await;
    }
}

/// A11/A12 variant (escaped member names): `crit`, `zip`, `cty`, `enc` and `b64` spelled with JSON
/// escapes (`cr\u0069t`), and `alg: none` written as `"\u006eone"` or under the name `\u0061lg`. A
/// byte-level check of the header text would miss them. Proves the header is judged after JSON
/// decoding: every one is refused before any key is looked up (0 JWKS hits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_variant_refused_header_members_spelled_with_json_escapes_are_still_refused() {
    let h = Harness::start().await;
    let claims = valid_claims(&h, now());
    let kid = h.idp.current_kid();
    let header = || provider_header(&h);
    let variants = [
        (
            "crit with an escaped letter",
            header()
                .push(r"cr\u0069t", r#"["x-foo"]"#)
                .push("x-foo", "1"),
        ),
        (
            "crit fully escaped naming exp",
            header().push(r"\u0063\u0072\u0069\u0074", r#"["exp"]"#),
        ),
        ("zip escaped", header().push(r"z\u0069p", js("DEF"))),
        ("cty escaped", header().push(r"\u0063ty", js("JWT"))),
        ("enc escaped", header().push(r"\u0065nc", js("A256GCM"))),
        ("b64 escaped", header().push(r"b\u0036\u0034", "false")),
        (
            "alg name escaped, value none",
            RawJson::default()
                .push(r"\u0061lg", js("none"))
                .push("kid", js(&kid)),
        ),
        (
            "alg value none escaped",
            RawJson::default()
                .push("alg", r#""\u006eone""#)
                .push("kid", js(&kid)),
        ),
        (
            "alg value NONE partly escaped",
            RawJson::default()
                .push("alg", r#""N\u004fNE""#)
                .push("kid", js(&kid)),
        ),
        (
            "alg value HS256 escaped",
            RawJson::default()
                .push("alg", r#""\u0048S256""#)
                .push("kid", js(&kid)),
        ),
    ];
    for (what, head) in &variants {
        assert_refused(&h, "/me", &sign(&h, head, &claims), &[], what).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A3/A6/B10 variant (escapes versus look-alikes in header values): `alg`, `kid` and `typ` spelled
/// with JSON escapes of the right characters are the same strings and are accepted, while
/// values that differ by one invisible or look-alike character (zero-width space, fullwidth R,
/// Cyrillic S, NUL, soft hyphen) are refused. Proves header values are compared exactly, after
/// JSON decoding, never by raw bytes or after normalization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3_variant_header_values_are_compared_exactly_after_json_unescaping() {
    let h = Harness::start().await;
    let claims = valid_claims(&h, now());
    let kid = h.idp.current_kid();
    let header = || provider_header(&h);
    let (left, right) = kid.split_at(kid.len() / 2);

    let refused = [
        (
            "alg with a zero-width space",
            header().with("alg", r#""RS256\u200b""#),
        ),
        (
            "alg with a fullwidth R",
            header().with("alg", r#""\uff32S256""#),
        ),
        (
            "alg with a Cyrillic S",
            header().with("alg", r#""R\u0405256""#),
        ),
        (
            "typ logout with an escaped plus",
            header().with("typ", r#""logout\u002bjwt""#),
        ),
        (
            "kid followed by NUL",
            header().with("kid", format!("\"{kid}\\u0000\"")),
        ),
        (
            "kid with a soft hyphen",
            header().with("kid", format!("\"{left}\\u00ad{right}\"")),
        ),
    ];
    for (what, head) in &refused {
        assert_refused(&h, "/me", &sign(&h, head, &claims), &[], what).await;
    }

    let accepted = [
        (
            "alg with an escaped letter",
            header().with("alg", r#""\u0052S256""#),
        ),
        ("kid fully escaped", header().with("kid", escaped(&kid))),
        (
            "typ with an escaped letter",
            header().with("typ", r#""\u004aWT""#),
        ),
        (
            "typ at+jwt with an escaped plus",
            header().with("typ", r#""at\u002bjwt""#),
        ),
        (
            "typ with an escaped solidus",
            header().with("typ", r#""application\/at+jwt""#),
        ),
    ];
    for (what, head) in &accepted {
        assert_accepted(&h, "/me", &sign(&h, head, &claims), what).await;
    }
}

/// A15 variant (base64url that is not canonical): header or payload with `=` padding, in the
/// standard alphabet (`+/`), or with non-zero trailing bits, each *signed over exactly that
/// text* by a published key; then the signature segment padded, in the standard alphabet, or
/// with trailing bits. A lax decoder reads the same bytes every time. Whitespace and line breaks
/// inside a segment are refused too (through the API, and over HTTP as a malformed header).
/// Proves only strict unpadded base64url is accepted, while the same key's canonical token passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a15_variant_noncanonical_base64url_is_refused_even_with_a_valid_signature() {
    let idp = MockProvider::start().await.expect("provider");
    let own = OwnKey::publish(&idp, "variant-ed25519");
    let h = Harness::with(idp, |b| b, None).await;
    let now = now();
    let url_only = |s: &str| s.contains(['-', '_']);

    // Shapes with trailing bits (length not a multiple of 3) and `-` or `_` in the encoding, so
    // every variant below differs from the canonical text.
    let header = (0..10_000)
        .map(|k| own.header().push("x", js(&"?".repeat(k))).text())
        .find(|t| t.len() % 3 != 0 && url_only(&b64(t)))
        .expect("a header shape");
    let h64 = b64(&header);
    let payload = (0..10_000)
        .map(|i| valid_claims(&h, now).push("n", js(&"?".repeat(i))).text())
        .find(|p| {
            let input = format!("{h64}.{}", b64(p));
            p.len() % 3 != 0 && url_only(&b64(p)) && url_only(&b64(own.signature(&input)))
        })
        .expect("a payload shape");
    let p64 = b64(&payload);
    let canonical = format!("{h64}.{p64}");
    assert_accepted(&h, "/me", &own.sign_input(&canonical), "canonical control").await;

    let (hb, pb) = (header.as_bytes(), payload.as_bytes());
    let inputs = [
        ("padded header", format!("{}.{p64}", URL_SAFE.encode(hb))),
        ("padded payload", format!("{h64}.{}", URL_SAFE.encode(pb))),
        (
            "standard-alphabet header",
            format!("{}.{p64}", STANDARD_NO_PAD.encode(hb)),
        ),
        (
            "standard-alphabet payload",
            format!("{h64}.{}", STANDARD_NO_PAD.encode(pb)),
        ),
        (
            "trailing bits in the header",
            format!("{}.{p64}", with_trailing_bits(&h64)),
        ),
        (
            "trailing bits in the payload",
            format!("{h64}.{}", with_trailing_bits(&p64)),
        ),
    ];
    for (what, input) in &inputs {
        assert_ne!(input, &canonical, "{what}");
        assert_refused(&h, "/me", &own.sign_input(input), &[], what).await;
    }

    let signature = own.signature(&canonical);
    let s64 = b64(&signature);
    let signatures = [
        ("padded signature", URL_SAFE.encode(&signature)),
        (
            "standard-alphabet signature",
            STANDARD_NO_PAD.encode(&signature),
        ),
        ("trailing bits in the signature", with_trailing_bits(&s64)),
    ];
    for (what, encoded) in &signatures {
        assert_ne!(encoded, &s64, "{what}");
        assert_eq!(
            lax_decode(&encoded.replace('+', "-").replace('/', "_")),
            signature
        );
        assert_refused(&h, "/me", &format!("{canonical}.{encoded}"), &[], what).await;
    }

    let cut = |s: &str, ws: &str| format!("{}{ws}{}", &s[..s.len() / 2], &s[s.len() / 2..]);
    for ws in ["\n", "\r\n", "\r", " ", "\t", "\u{b}", "\u{c}"] {
        let tokens = [
            own.sign_input(&format!("{}.{p64}", cut(&h64, ws))),
            own.sign_input(&format!("{h64}.{}", cut(&p64, ws))),
            format!("{canonical}.{}", cut(&s64, ws)),
            own.sign_input(&format!("{h64}{ws}.{p64}")),
        ];
        for token in &tokens {
            let refused = h
                .auth
                .validate(token)
                .await
                .map(|_| ())
                .map_err(|e| e.kind());
            assert_eq!(refused, Err(ErrorKind::InvalidToken), "{ws:?}");
        }
        if ws == " " || ws == "\t" {
            for token in &tokens {
                let header = authorization(format!("Bearer {token}"));
                let reply = both_with(&h, "/me", std::slice::from_ref(&header)).await;
                assert_eq!(reply.status, 400, "{ws:?}: {reply:?}");
                assert_eq!(reply.error(), Some("invalid_request"));
                assert_not_echoed(&reply, token, &[]);
                assert_anonymous(&h, &[header], "whitespace inside a segment").await;
            }
        }
    }
}

/// A13 variant (other serializations and wrappers): the JWS JSON serializations (flattened and
/// general), the whole token base64url-encoded again, wrapped in quotes or angle brackets,
/// percent-encoded dots, a trailing `;` or `=`, swapped or reversed segments, the scheme twice,
/// and `access_token=` in the credentials. Proves each is refused (401, or 400 for a malformed
/// header) on both frameworks without echo, while the same token bare is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a13_variant_other_serializations_and_wrapped_tokens_are_refused() {
    let h = Harness::start().await;
    let valid = token(&h).sign();
    let seg: Vec<&str> = valid.split('.').collect();
    let variants = [
        (
            "flattened JWS JSON",
            json!({"protected": seg[0], "payload": seg[1], "signature": seg[2]}).to_string(),
        ),
        (
            "general JWS JSON",
            json!({"payload": seg[1], "signatures": [{"protected": seg[0], "signature": seg[2]}]})
                .to_string(),
        ),
        ("base64url of the whole token", b64(&valid)),
        ("double quotes", format!("\"{valid}\"")),
        ("single quotes", format!("'{valid}'")),
        ("angle brackets", format!("<{valid}>")),
        ("percent-encoded dots", valid.replace('.', "%2E")),
        ("trailing semicolon", format!("{valid};")),
        ("trailing equals sign", format!("{valid}=")),
        ("percent-encoded newline", format!("{valid}%0A")),
        (
            "segments reversed",
            format!("{}.{}.{}", seg[2], seg[1], seg[0]),
        ),
        (
            "header and payload swapped",
            format!("{}.{}.{}", seg[1], seg[0], seg[2]),
        ),
        ("scheme twice", format!("Bearer {valid}")),
        ("as a parameter", format!("access_token={valid}")),
    ];
    for (what, credentials) in &variants {
        let header = authorization(format!("Bearer {credentials}"));
        let reply = both_with(&h, "/me", std::slice::from_ref(&header)).await;
        assert_refused_or_malformed(&reply, what);
        assert_not_echoed(&reply, &valid, &[credentials.as_str()]);
        assert_anonymous(&h, &[header], what).await;
    }
    assert_accepted(&h, "/me", &valid, "the bare token").await;
}

/// A17/A13 variant (size boundary): a correctly signed, valid token of exactly `max_token_bytes`
/// is accepted on both frameworks, and one byte more is refused (401 from the library, or 431 if
/// the server refuses the header first), also through the API. Proves the size limit is exact
/// and inclusive, and applies before anything else to the longer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a17_variant_token_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_refused() {
    let h = Harness::start().await;
    let max = h.auth.config().max_token_bytes();
    let now = now();
    let kid = h.idp.current_kid();
    let sig_len = token(&h).sign().rsplit_once('.').expect("a JWS").1.len();
    let b64_len = |n: usize| (4 * n).div_ceil(3);
    let of_length = |target: usize| -> String {
        let base = provider_header(&h).text();
        for spaces in 0..3 {
            // JSON allows whitespace before the closing brace: it shifts the header length.
            let header = format!("{}{}}}", &base[..base.len() - 1], " ".repeat(spaces));
            let fixed = b64_len(header.len()) + 2 + sig_len;
            let unpadded = valid_claims(&h, now).push("pad", js("")).text().len();
            for pad in 0..target {
                let total = fixed + b64_len(unpadded + pad);
                if total > target {
                    break;
                }
                if total == target {
                    let claims = valid_claims(&h, now).push("pad", js(&"x".repeat(pad)));
                    let t = h
                        .idp
                        .sign_raw(header.as_bytes(), claims.text().as_bytes(), &kid);
                    assert_eq!(t.len(), target);
                    return t;
                }
            }
        }
        panic!("no token of {target} bytes")
    };

    let at_limit = of_length(max);
    assert_accepted(&h, "/me", &at_limit, "exactly max_token_bytes").await;
    let over = of_length(max + 1);
    for fw in FRAMEWORKS {
        let reply = h.bearer(fw, "/me", &over).await;
        match reply.status {
            401 => assert_invalid_token(&reply),
            431 => {}
            _ => panic!("{fw:?}: one byte over the limit must be refused: {reply:?}"),
        }
        assert_not_echoed(&reply, &over, &[]);
    }
    assert_anonymous(&h, &[authorization(format!("Bearer {over}"))], "over").await;
    let refused = h
        .auth
        .validate(&over)
        .await
        .map(|_| ())
        .map_err(|e| e.kind());
    assert_eq!(refused, Err(ErrorKind::InvalidToken));
}

/// A6 variant (look-alikes of a *published* kid): the real kid upper-cased, with a zero-width
/// space, a combining accent, a BOM, a NUL, fullwidth digits, or extended past the kid length
/// limit, each on a token signed by that very key. Proves kids are matched exactly (no case
/// folding, normalization or trimming), never echoed, and cost at most one JWKS refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_variant_lookalikes_of_a_published_kid_are_refused() {
    let h = Harness::start().await;
    assert_accepted(&h, "/me", &token(&h).sign(), "control").await;
    let before = jwks_hits(&h);
    let kid = h.idp.current_kid();
    let (left, right) = kid.split_at(kid.len() / 2);
    let fullwidth: String = kid
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0xff10 + d).expect("a fullwidth digit"),
            None => c,
        })
        .collect();
    let lookalikes = [
        kid.to_uppercase(),
        format!("{left}\u{200b}{right}"),
        format!("{kid}\u{301}"),
        format!("\u{feff}{kid}"),
        format!("{kid}\u{0}"),
        fullwidth,
        format!("{kid}{}", "0".repeat(257 - kid.len())),
        format!("{kid}{}", "0".repeat(4096)),
    ];
    for lookalike in lookalikes.iter().filter(|k| **k != kid) {
        let t = token(&h).header("kid", json!(lookalike)).sign();
        assert_refused(&h, "/me", &t, &[lookalike.as_str()], "kid look-alike").await;
    }
    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A15 variant (invalid Unicode in JSON): lone or reversed UTF-16 surrogate escapes (`\ud800`)
/// in claims and in the header, and raw invalid UTF-8 forms (overlong `/`, CESU-8 surrogates,
/// 5-byte and above-U+10FFFF sequences) or unescaped control bytes inside a string. Proves such
/// text is refused before any key is fetched, while a proper surrogate pair is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a15_variant_lone_surrogates_and_invalid_utf8_forms_are_refused() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();
    let now = now();
    let header = provider_header(&h);
    let claims = valid_claims(&h, now);
    let escapes = [
        (
            "lone high surrogate in sub",
            claims.clone().with("sub", r#""\ud800""#),
        ),
        (
            "lone low surrogate in sub",
            claims.clone().with("sub", r#""\udc00alice""#),
        ),
        (
            "reversed pair in a custom claim",
            claims.clone().push("name", r#""\ude00\ud83d""#),
        ),
        (
            "high surrogate then a letter",
            claims.clone().push("name", r#""\ud83dA""#),
        ),
    ];
    for (what, c) in &escapes {
        assert_refused(&h, "/me", &sign(&h, &header, c), &[], what).await;
    }
    let in_header = header.clone().push("x", r#""\udfff""#);
    assert_refused(
        &h,
        "/me",
        &sign(&h, &in_header, &claims),
        &[],
        "surrogate in header",
    )
    .await;

    let raw: [(&str, &[u8]); 7] = [
        ("overlong solidus", b"\xc0\xaf"),
        ("CESU-8 surrogate", b"\xed\xa0\x80"),
        ("five-byte sequence", b"\xf8\x88\x80\x80\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("truncated sequence", b"\xe2\x82"),
        ("unescaped control byte", b"\x01"),
        ("unescaped NUL", b"\x00"),
    ];
    let (claims_text, header_text) = (claims.text(), header.text());
    let with_member = |json: &str, bytes: &[u8]| {
        [
            &json.as_bytes()[..json.len() - 1],
            &b",\"name\":\"a"[..],
            bytes,
            &b"\"}"[..],
        ]
        .concat()
    };
    for (what, bytes) in raw {
        let bad_claims = with_member(&claims_text, bytes);
        let t = h.idp.sign_raw(header_text.as_bytes(), &bad_claims, &kid);
        assert_refused(&h, "/me", &t, &[], what).await;
        let bad_header = with_member(&header_text, bytes);
        let t = h.idp.sign_raw(&bad_header, claims_text.as_bytes(), &kid);
        assert_refused(&h, "/me", &t, &[], what).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");

    let pair = claims.clone().push("name", r#""\ud83d\ude00""#);
    assert_accepted(
        &h,
        "/me",
        &sign(&h, &header, &pair),
        "a proper surrogate pair",
    )
    .await;
}

/// A13 (empty bearer token), on both frameworks: `Authorization: Bearer` with nothing after the
/// scheme, with one or several spaces, in other letter cases, or with a tab. Proves each gets
/// 401 with the `error="invalid_token"` challenge *and* the JSON body `error: invalid_token` from
/// axum and from actix-web alike (not the bare challenge of a missing token, not 400), the
/// optional route sees no user, the API refuses an empty or blank token, and no key is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a13_variant_empty_bearer_token_is_an_invalid_token_on_both_frameworks() {
    let h = Harness::start().await;
    for blank in ["", " ", "  "] {
        let refused = h
            .auth
            .validate(blank)
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        assert_eq!(refused, Err(ErrorKind::InvalidToken), "API: {blank:?}");
    }
    let values = [
        "Bearer",
        "Bearer ",
        "Bearer  ",
        "Bearer        ",
        "bearer ",
        "BEARER   ",
        "Bearer \t",
        "Bearer\t",
    ];
    for value in values {
        let header = authorization(value);
        for fw in FRAMEWORKS {
            let reply = h.get_with(fw, "/me", std::slice::from_ref(&header)).await;
            assert_eq!(reply.status, 401, "{value:?} on {fw:?}: {reply:?}");
            assert_invalid_token(&reply);
            assert_eq!(
                reply.body["error"],
                json!("invalid_token"),
                "{value:?} on {fw:?}: the JSON body names the error"
            );
        }
        let reply = both_with(&h, "/me", std::slice::from_ref(&header)).await;
        assert_invalid_token(&reply);
        assert_anonymous(&h, &[header], value).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A18 variant (ES384, ECDSA on P-384, in the default algorithm allow-list): on a token whose
/// header and claims are valid and whose kid names the published P-384 key, the signature is
/// replaced by r = s = 0 (CVE-2022-21449 on P-384), r or s = 0, r or s = n, r = s = n, r or s =
/// n + 1, the field prime p or all-ones (both above n), the valid r and s swapped, the DER
/// encoding of (0, 0) and of the valid (r, s), 95 and 97 bytes (one byte short or long, at
/// either end), all zero bytes, the ES256 length (64 bytes), r and s each with a leading zero
/// (98 bytes) or left-padded to the ES512 length (132 bytes), and nothing. Proves each is 401
/// `invalid_token` on both frameworks, without echo and without a JWKS refetch, while the token
/// with its own signature is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a18_variant_malformed_es384_signatures_are_refused() {
    let idp = MockProvider::start_with_alg(SigningAlg::ES384)
        .await
        .expect("provider");
    let h = Harness::with(idp, |b| b, None).await;
    let kid = h.idp.current_kid();
    let jwk = published_jwk(h.client(), &h.idp, &kid).await;
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
        (&json!("EC"), &json!("P-384"), &json!("ES384"))
    );
    let valid = token(&h).sign();
    let header: Value =
        serde_json::from_slice(&unb64(valid.split('.').next().expect("a header"))).expect("JSON");
    assert_eq!(
        (&header["alg"], &header["kid"]),
        (&json!("ES384"), &json!(kid))
    );
    assert_accepted(&h, "/me", &valid, "the genuine ES384 signature").await;
    let before = jwks_hits(&h);

    let (_, signature) = split_signature(&valid);
    assert_eq!(signature.len(), 96, "P-384 r || s");
    let (r, s) = signature.split_at(48);
    let (n, p) = (hex(P384_N), hex(P384_P));
    assert_eq!((n.len(), p.len()), (48, 48));
    let n_plus_1 = big_add_sub(&n, &[1], false)[1..].to_vec();
    let zero = [0u8; 48];
    let ff = [0xffu8; 48];
    let raw = |r: &[u8], s: &[u8]| [r, s].concat();
    let signatures: [(&str, Vec<u8>); 24] = [
        ("r = s = 0", raw(&zero, &zero)),
        ("r = 0", raw(&zero, s)),
        ("s = 0", raw(r, &zero)),
        ("r = s = n", raw(&n, &n)),
        ("r = n", raw(&n, s)),
        ("s = n", raw(r, &n)),
        ("r = n + 1", raw(&n_plus_1, s)),
        ("s = n + 1", raw(r, &n_plus_1)),
        ("r = p", raw(&p, s)),
        ("s = p", raw(r, &p)),
        ("r all ones", raw(&ff, s)),
        ("s all ones", raw(r, &ff)),
        ("r and s swapped", raw(s, r)),
        (
            "r = s = 0 as DER",
            der(0x30, &[der_uint(&zero), der_uint(&zero)].concat()),
        ),
        ("DER", der(0x30, &[der_uint(r), der_uint(s)].concat())),
        ("95 bytes", signature[..95].to_vec()),
        ("95 bytes, first dropped", signature[1..].to_vec()),
        ("97 bytes, trailing zero", [&signature[..], &[0]].concat()),
        ("97 bytes, leading zero", [&[0], &signature[..]].concat()),
        ("all zero bytes", vec![0; 96]),
        ("ES256 length", signature[..64].to_vec()),
        (
            "r and s with a leading zero each (98 bytes)",
            [&[0][..], r, &[0], s].concat(),
        ),
        (
            "r and s left-padded to the ES512 length (132 bytes)",
            [&[0; 18][..], r, &[0; 18], s].concat(),
        ),
        ("empty", Vec::new()),
    ];
    for (what, signature) in &signatures {
        assert_refused(&h, "/me", &with_signature(&valid, signature), &[], what).await;
    }
    let no_kid = token(&h).remove_header("kid").sign();
    assert_refused(
        &h,
        "/me",
        &with_signature(&no_kid, &[0; 96]),
        &[],
        "no kid, zeros",
    )
    .await;
    assert_eq!(jwks_hits(&h) - before, 0, "a known kid never refetches");
}

/// A19 variant (RSASSA-PSS: PS256, PS384 and PS512, each a published 2048-bit key of the mock
/// provider): on a token whose header and claims are valid and whose kid names the key, the
/// signature is truncated by one byte (at either end), extended by one byte (at either end),
/// replaced by an integer not below the modulus (n, n + 1, s + n, all ones), by all zero bytes,
/// by 1 or n − 1 (whose e-th powers are ±1), or has one bit flipped. Proves each is 401
/// `invalid_token` on both frameworks without echo or JWKS refetch, while the genuine signature
/// is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_variant_malformed_pss_signatures_are_refused() {
    let h = Harness::start().await;
    let algs = [SigningAlg::PS256, SigningAlg::PS384, SigningAlg::PS512];
    let kids: Vec<String> = algs.iter().map(|alg| h.idp.add_key(*alg)).collect();
    let mut moduli = Vec::new();
    for (alg, kid) in algs.iter().zip(&kids) {
        let jwk = published_jwk(h.client(), &h.idp, kid).await;
        assert_eq!(
            (&jwk["kty"], &jwk["alg"]),
            (&json!("RSA"), &json!(alg.as_str()))
        );
        moduli.push(unb64(jwk["n"].as_str().expect("an RSA modulus")));
    }

    for ((alg, kid), n) in algs.iter().zip(&kids).zip(&moduli) {
        let len = n.len();
        assert_eq!(bit_len(n), 2048, "{alg}");
        let valid = token(&h).kid(kid).sign();
        let header: Value =
            serde_json::from_slice(&unb64(valid.split('.').next().expect("a header")))
                .expect("JSON");
        assert_eq!(
            (&header["alg"], &header["kid"]),
            (&json!(alg.as_str()), &json!(kid))
        );
        assert_accepted(&h, "/me", &valid, &format!("{alg}: genuine")).await;
        let before = jwks_hits(&h);

        let (_, sig) = split_signature(&valid);
        assert_eq!(sig.len(), len, "{alg}");
        let mut one = vec![0u8; len];
        one[len - 1] = 1;
        let n_plus_1 = big_add_sub(n, &[1], false);
        assert_eq!(n_plus_1[0], 0, "n + 1 fits");
        let mut flipped_first = sig.clone();
        flipped_first[0] ^= 0x01;
        let mut flipped_last = sig.clone();
        flipped_last[len - 1] ^= 0x80;
        let mut cases: Vec<(String, String)> = [
            ("truncated by one byte", sig[..len - 1].to_vec()),
            ("first byte dropped", sig[1..].to_vec()),
            ("one extra trailing byte", [&sig[..], &[0]].concat()),
            ("one extra leading zero", [&[0], &sig[..]].concat()),
            ("all zero bytes", vec![0; len]),
            ("the modulus", n.clone()),
            ("the modulus plus one", n_plus_1[1..].to_vec()),
            ("all ones", vec![0xff; len]),
            ("one", one),
            (
                "the modulus minus one",
                big_add_sub(n, &[1], true)[1..].to_vec(),
            ),
            ("first bit flipped", flipped_first),
            ("last bit flipped", flipped_last),
            ("empty", Vec::new()),
        ]
        .into_iter()
        .map(|(what, s)| (format!("{alg}: {what}"), with_signature(&valid, &s)))
        .collect();

        // s + n is s modulo n: a verifier that reduces its input would accept it. PSS signatures
        // are randomized, so re-sign until one leaves s + n within the modulus length; the
        // first one's s + n is also sent in `len + 1` bytes.
        for attempt in 0..32 {
            let t = token(&h).kid(kid).sign();
            let (_, s) = split_signature(&t);
            let sum = big_add_sub(n, &s, false);
            if attempt == 0 {
                cases.push((
                    format!("{alg}: s + n in {} bytes", len + 1),
                    with_signature(&t, &sum),
                ));
            }
            if sum[0] == 0 {
                cases.push((
                    format!("{alg}: s + n in {len} bytes"),
                    with_signature(&t, &sum[1..]),
                ));
                break;
            }
        }
        for (what, t) in &cases {
            assert_refused(&h, "/me", t, &[], what).await;
        }
        assert_eq!(
            jwks_hits(&h) - before,
            0,
            "{alg}: a known kid never refetches"
        );
    }
}

/// A19 variant (altered RSASSA-PSS padding): for PS256, PS384 and PS512, tokens signed by
/// published 2048-bit keys over EMSA-PSS encodings that break RFC 8017 section 9.1 or RFC 7518
/// section 3.5 in one place each: a salt of 0, hLen + 1 or the maximal length, MGF1 with SHA-1,
/// the encoding of another hash (a PS384 encoding under a PS256 header and key, and so on),
/// M' without its eight zero bytes, a non-zero byte in PS, separator 0x02 instead of 0x01,
/// trailer 0xbb or 0x00 instead of 0xbc, and the leftmost bit of EM set. The keys are hand-made (e = 3)
/// so any encoding can be signed; the correct encoding under the same construction is accepted
/// (and verifies in aws-lc-rs). Proves each spoiled one is 401 `invalid_token` on both
/// frameworks, without echo or JWKS refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_variant_altered_pss_paddings_are_refused() {
    let idp = MockProvider::start().await.expect("provider");
    let suites: [(
        &str,
        &'static digest::Algorithm,
        &'static digest::Algorithm,
        &'static aws_sig::RsaParameters,
    ); 3] = [
        (
            "PS256",
            &digest::SHA256,
            &digest::SHA384,
            &aws_sig::RSA_PSS_2048_8192_SHA256,
        ),
        (
            "PS384",
            &digest::SHA384,
            &digest::SHA256,
            &aws_sig::RSA_PSS_2048_8192_SHA384,
        ),
        (
            "PS512",
            &digest::SHA512,
            &digest::SHA256,
            &aws_sig::RSA_PSS_2048_8192_SHA512,
        ),
    ];
    let mut controls = Vec::new();
    let mut spoiled = Vec::new();
    for (alg, hash, other, params) in suites {
        let good = Pss::new(hash);
        let h_len = hash.output_len();
        let variants: [(&str, Pss); 11] = [
            (
                "salt of 0 bytes",
                Pss {
                    salt_len: 0,
                    ..good
                },
            ),
            (
                "salt of hLen + 1 bytes",
                Pss {
                    salt_len: h_len + 1,
                    ..good
                },
            ),
            (
                "salt of the maximal length",
                Pss {
                    salt_len: 256 - h_len - 2,
                    ..good
                },
            ),
            (
                "MGF1 with SHA-1",
                Pss {
                    mgf: &digest::SHA1_FOR_LEGACY_USE_ONLY,
                    ..good
                },
            ),
            ("the encoding of another hash", Pss::new(other)),
            (
                "M' without the zero prefix",
                Pss {
                    zero_prefix: false,
                    ..good
                },
            ),
            (
                "a non-zero byte in PS",
                Pss {
                    spoiled_ps: true,
                    ..good
                },
            ),
            (
                "separator 0x02",
                Pss {
                    separator: 0x02,
                    ..good
                },
            ),
            (
                "trailer 0xbb",
                Pss {
                    trailer: 0xbb,
                    ..good
                },
            ),
            (
                "leftmost bit of EM set",
                Pss {
                    top_bit_set: true,
                    ..good
                },
            ),
            (
                "trailer 0x00",
                Pss {
                    trailer: 0x00,
                    ..good
                },
            ),
        ];
        let kid = format!("pss-{alg}-control");
        let (token, input, key) = pss_signed(&idp, alg, &kid, &good);
        assert!(
            key.verifies(params, input.as_bytes(), &key.signature),
            "{alg}: the hand-made control is a genuine PSS signature"
        );
        idp.publish_raw_jwk(key.jwk(&kid, Some(alg)));
        controls.push((format!("{alg}: control"), token));
        for (i, (what, pss)) in variants.iter().enumerate() {
            let kid = format!("pss-{alg}-{i}");
            let (token, _, key) = pss_signed(&idp, alg, &kid, pss);
            idp.publish_raw_jwk(key.jwk(&kid, Some(alg)));
            spoiled.push((format!("{alg}: {what}"), token));
        }
    }
    let h = Harness::with(idp, |b| b, None).await;
    for (what, t) in &controls {
        assert_accepted(&h, "/me", t, what).await;
    }
    let before = jwks_hits(&h);
    for (what, t) in &spoiled {
        assert_refused(&h, "/me", t, &[], what).await;
    }
    assert_eq!(jwks_hits(&h) - before, 0, "known kids never refetch");
}

/// A19 variant (RSA keys just under 2048 bits): JWKS keys of 2040 bits (255-byte modulus), of
/// 2047 bits (a 256-byte modulus whose top bit is clear, so a byte-length check would call it
/// 2048 bits), of 2040 bits written with a leading zero byte (256 bytes in the JWK), and of 2040
/// bits without `alg`, each verifying a correctly signed RS256 token (checked with aws-lc-rs's
/// legacy 1024-bit-and-up verifier). Proves every such token is 401 `invalid_token` on both
/// frameworks, a kid-less token signed by a weak key is refused too, and the weak keys do not
/// make a kid-less token of the provider's key ambiguous (they are never loaded); the same
/// construction at exactly 2048 bits is accepted, so the refusals are down to the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_variant_rsa_keys_of_2040_and_2047_bits_are_never_loaded() {
    let idp = MockProvider::start().await.expect("provider");
    let mut weak = Vec::new();
    for (kid, bits, alg, zero_padded) in [
        ("weak-2040", 2040, Some("RS256"), false),
        ("weak-2047", 2047, Some("RS256"), false),
        ("weak-2040-zero-padded", 2040, Some("RS256"), true),
        ("weak-2040-without-alg", 2040, None, false),
    ] {
        let (t, key) = cube_signed(&idp, Some(kid), bits);
        let mut jwk = key.jwk(kid, alg);
        if zero_padded {
            let padded = [&[0u8][..], &key.n].concat();
            assert_eq!(padded.len(), 256);
            jwk["n"] = json!(b64(padded));
        } else {
            assert_eq!(key.n.len(), bits.div_ceil(8));
        }
        idp.publish_raw_jwk(jwk);
        weak.push((kid, t));
    }
    let (weak_no_kid, key) = cube_signed(&idp, None, 2040);
    idp.publish_raw_jwk(key.jwk("weak-2040-for-kidless", Some("RS256")));
    let h = Harness::with(idp, |b| b, None).await;

    for (kid, t) in &weak {
        assert_refused(&h, "/me", t, &[], kid).await;
    }
    assert_refused(&h, "/me", &weak_no_kid, &[], "kid-less, 2040-bit key").await;
    // With the weak keys skipped, one RS256 key is published: a kid-less token is unambiguous.
    let no_kid = token(&h).remove_header("kid").sign();
    assert_accepted(&h, "/me", &no_kid, "kid-less, the provider's key").await;

    let idp = MockProvider::start().await.expect("provider");
    let (control, key) = cube_signed(&idp, Some("cube-2048"), 2048);
    assert_eq!(bit_len(&key.n), 2048);
    idp.publish_raw_jwk(key.jwk("cube-2048", Some("RS256")));
    let h = Harness::with(idp, |b| b, None).await;
    assert_accepted(&h, "/me", &control, "the same construction at 2048 bits").await;
}

// ---------------------------------------------------------------------------------------------
// B. Registered claims

/// B2 variant (number spellings): `exp`, `nbf` and `iat` written as JSON that is not a number
/// (`+N`, leading zero, `N.`, `.N`, `0x..`, `NaN`, `Infinity`, digit separators, suffixes) or
/// as numbers out of any range (`1e400`, `u64::MAX`, `-0`, `1e-7`). Proves each is refused, and
/// that legitimate spellings of the same instant (`Ne0`, `N0e-1`, a fraction) are read as
/// numbers and accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_variant_non_json_number_spellings_and_out_of_range_times_are_refused() {
    let h = Harness::start().await;
    let now = now();
    let later = now + 3600;
    let not_numbers = [
        format!("+{later}"),
        format!("0{later}"),
        format!("{later}."),
        format!(".{later}"),
        format!("{later}e"),
        format!("{later}L"),
        format!("{later}n"),
        "0x7fffffff".to_owned(),
        "1_999_999_999".to_owned(),
        "NaN".to_owned(),
        "Infinity".to_owned(),
        "-Infinity".to_owned(),
        "1e400".to_owned(),
        "-1e400".to_owned(),
    ];
    for claim in ["exp", "nbf", "iat"] {
        for spelling in &not_numbers {
            let t = signed_claims(&h, now, |c| c.with(claim, spelling.clone()));
            assert_refused(&h, "/me", &t, &[], &format!("{claim}: {spelling}")).await;
        }
    }
    for exp in [
        "1.5",
        "-0",
        "-0.0",
        "0.0",
        "1e-7",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        let t = signed_claims(&h, now, |c| c.with("exp", exp));
        assert_refused(&h, "/me", &t, &[], &format!("exp: {exp}")).await;
    }

    for (claim, value) in [
        ("exp", format!("{later}e0")),
        ("exp", format!("{later}0e-1")),
        ("exp", format!("{later}.5")),
        ("nbf", format!("{}.9", now - 10)),
        ("iat", format!("{now}.0")),
    ] {
        let t = signed_claims(&h, now, |c| c.with(claim, value.clone()));
        assert_accepted(&h, "/me", &t, &format!("{claim}: {value}")).await;
    }
}

/// B2 variant (CVE-2026-25537 class, "> 2^53" written as a float): `exp` literals whose value is
/// above 2^53 but that a binary64 parser rounds down to exactly 2^53 (`9007199254740993.0`,
/// `9.007199254740993e15`, `9007199254740992.5`, `90071992547409930e-1`). The integer spelling
/// `9007199254740993` is refused; the same number written as a float must be too. Proves the
/// range check does not depend on the spelling of the number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_variant_exp_float_literals_above_2_pow_53_are_refused() {
    let h = Harness::start().await;
    let now = now();
    let mut accepted = Vec::new();
    for exp in [
        "9007199254740993",
        "9007199254740993.0",
        "9.007199254740993e15",
        "9007199254740992.5",
        "90071992547409930e-1",
    ] {
        let t = signed_claims(&h, now, |c| c.with("exp", exp));
        let reply = h.bearer_both("/me", &t).await;
        if reply.status == 401 {
            assert_invalid_token(&reply);
        } else {
            accepted.push((exp, reply.status));
        }
    }
    assert!(
        accepted.is_empty(),
        "exp above 2^53 must be refused (401); got {accepted:?}"
    );
}

/// B5 variant (fractional NumericDate at the leeway boundary): with the clock standing at `now`,
/// `nbf = now + leeway + 0.5` (or `+ 0.999`) and `iat = now + leeway + 0.5` lie beyond the leeway
/// and must be refused, as must `nbf`/`iat = now + 0.5` with no leeway; `nbf = now + leeway`
/// and `now + leeway - 0.5` are accepted. Proves fractional times are not rounded in the
/// direction that accepts a token early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b5_variant_fractional_nbf_and_iat_beyond_the_leeway_are_refused() {
    let mut accepted = Vec::new();
    for leeway in [LEEWAY, 0] {
        let (h, now) = fixed_clock(leeway as u64).await;
        let edge = now + leeway;
        for (claim, value) in [
            ("nbf", format!("{edge}")),
            ("nbf", format!("{}.5", edge - 1)),
        ] {
            let t = signed_claims(&h, now, |c| c.with(claim, value.clone()));
            assert_accepted(&h, "/me", &t, &format!("{claim} {value}")).await;
        }
        for (claim, value) in [
            ("nbf", format!("{edge}.5")),
            ("nbf", format!("{edge}.999")),
            ("iat", format!("{edge}.5")),
        ] {
            let t = signed_claims(&h, now, |c| c.with(claim, value.clone()));
            let reply = h.bearer_both("/me", &t).await;
            if reply.status == 401 {
                assert_invalid_token(&reply);
            } else {
                accepted.push(format!(
                    "leeway {leeway}: {claim} = now + {leeway}{} -> {}",
                    &value[value.find('.').unwrap_or(value.len())..],
                    reply.status
                ));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "times beyond the leeway must be refused (401); got {accepted:#?}"
    );
}

/// B1-B11 variant (duplicate claim names in the payload): `exp`, `iss`, `aud`, `sub`, `nbf` and
/// `iat` given twice (also with the second name escaped, `e\u0078p`), the last value invalid. RFC
/// 7519 section 4 allows refusing or taking the last; taking the first would accept these
/// correctly signed tokens. Proves these are refused; that duplicates whose last value is valid
/// are refused or accepted; and that when a duplicated `sub` is accepted the handler sees the
/// same (last) value the validator checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_variant_duplicate_registered_claims_never_resolve_to_the_first() {
    let h = Harness::start().await;
    let now = now();
    let (past, later) = ((now - 3600).to_string(), (now + 3600).to_string());
    let iss = js(&h.idp.issuer());
    let foreign = js("https://evil.example");
    let c = || valid_claims(&h, now);

    let last_unacceptable = [
        ("exp future then past", c().push("exp", past.clone())),
        (
            "exp future then escaped-name past",
            c().push(r"e\u0078p", past.clone()),
        ),
        ("exp then a string", c().push("exp", js("never"))),
        ("iss then foreign", c().push("iss", foreign.clone())),
        (
            "iss then escaped-name foreign",
            c().push(r"\u0069ss", foreign.clone()),
        ),
        ("aud then another", c().push("aud", js("other-api"))),
        ("aud then an empty list", c().push("aud", "[]")),
        ("sub then empty", c().push("sub", js(""))),
        ("sub then a number", c().push("sub", "7")),
        (
            "nbf past then a day ahead",
            c().push("nbf", past.clone())
                .push("nbf", (now + 86_400).to_string()),
        ),
        (
            "iat then a day ahead",
            c().push("iat", (now + 86_400).to_string()),
        ),
    ];
    for (what, claims) in &last_unacceptable {
        let t = sign(&h, &provider_header(&h), claims);
        assert_refused(&h, "/me", &t, &[], what).await;
    }

    let last_acceptable = [
        (
            "exp past then future",
            c().without("exp").push("exp", past).push("exp", later),
        ),
        (
            "iss foreign then ours",
            c().without("iss").push("iss", foreign).push("iss", iss),
        ),
        (
            "aud another then ours",
            c().without("aud")
                .push("aud", js("other-api"))
                .push("aud", js(AUDIENCE)),
        ),
    ];
    for (what, claims) in &last_acceptable {
        let t = sign(&h, &provider_header(&h), claims);
        assert_refused_or_accepted(&h, "/me", &t, what).await;
    }

    for (first, last) in [("mallory", "alice"), ("alice", "mallory")] {
        let claims = c()
            .without("sub")
            .push("sub", js(first))
            .push("sub", js(last));
        let t = sign(&h, &provider_header(&h), &claims);
        let reply = assert_refused_or_accepted(&h, "/me", &t, "duplicated sub").await;
        if reply.status == 200 {
            assert_eq!(reply.body["sub"], last, "the handler sees another subject");
        }
    }
}

/// B1/B6/B7/B11 variant (look-alike claim names): the registered claim missing and a look-alike
/// present instead (`Exp`, `EXP`, `exp `, `exp\u0000`, Cyrillic `еxp`, `Iss`, `iss `, `Aud`,
/// `Sub`), or an expired `exp` next to a fresh `Exp`. Proves claim names are matched exactly:
/// the look-alikes count as absent and the token is refused, while `\u0065xp` (the JSON escape
/// of the real name) is the real claim and is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_variant_lookalike_names_do_not_stand_in_for_registered_claims() {
    let h = Harness::start().await;
    let now = now();
    let later = (now + 3600).to_string();
    let iss = js(&h.idp.issuer());
    let c = || valid_claims(&h, now);
    let cases = [
        ("Exp", c().without("exp").push("Exp", later.clone())),
        ("EXP", c().without("exp").push("EXP", later.clone())),
        (
            "exp with a space",
            c().without("exp").push("exp ", later.clone()),
        ),
        (
            "exp with NUL",
            c().without("exp").push(r"exp\u0000", later.clone()),
        ),
        (
            "Cyrillic exp",
            c().without("exp").push(r"\u0435xp", later.clone()),
        ),
        (
            "expired exp and a fresh Exp",
            c().with("exp", (now - 3600).to_string())
                .push("Exp", later.clone()),
        ),
        ("Iss", c().without("iss").push("Iss", iss.clone())),
        (
            "iss with a space",
            c().without("iss").push(" iss", iss.clone()),
        ),
        ("Aud", c().without("aud").push("Aud", js(AUDIENCE))),
        (
            "aud with NUL",
            c().without("aud").push(r"aud\u0000", js(AUDIENCE)),
        ),
        ("Sub", c().without("sub").push("Sub", js("alice"))),
    ];
    for (what, claims) in &cases {
        let t = sign(&h, &provider_header(&h), claims);
        assert_refused(&h, "/me", &t, &[], what).await;
    }
    let t = signed_claims(&h, now, |c| c.without("exp").push(r"\u0065xp", later));
    assert_accepted(&h, "/me", &t, "escaped name of exp").await;
}

/// B6 variant (issuer spellings): the issuer with a NUL, zero-width space or BOM, `%2F`, literal
/// backslashes, a fullwidth colon, `/.`, `?`, `#`, userinfo, the loopback address in decimal,
/// zero-padded or IPv4-mapped form, an upper-case scheme, or twice. Proves each is refused before
/// any key is fetched, while `http:\/\/...` and `\u0068ttp...` (JSON escapes of the same string,
/// as PHP or .NET encoders write them) are accepted: exact match on the decoded value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b6_variant_issuer_is_matched_exactly_after_json_unescaping() {
    let h = Harness::start().await;
    let now = now();
    let iss = h.idp.issuer();
    assert!(iss.starts_with("http://127.0.0.1:"), "{iss}");
    let refused = [
        ("NUL suffix", format!("\"{iss}\\u0000\"")),
        ("zero-width space suffix", format!("\"{iss}\\u200b\"")),
        ("BOM prefix", format!("\"\\ufeff{iss}\"")),
        ("percent-encoded solidus", js(&iss.replace('/', "%2F"))),
        ("literal backslashes", js(&iss.replace('/', "\\/"))),
        ("fullwidth colon", js(&iss.replacen(':', "\u{ff1a}", 1))),
        ("dot segment", js(&format!("{iss}/."))),
        ("empty query", js(&format!("{iss}?"))),
        ("empty fragment", js(&format!("{iss}#"))),
        ("userinfo", js(&iss.replace("://", "://alice@"))),
        ("decimal IPv4", js(&iss.replace("127.0.0.1", "2130706433"))),
        (
            "zero-padded IPv4",
            js(&iss.replace("127.0.0.1", "127.000.000.001")),
        ),
        (
            "IPv4-mapped IPv6",
            js(&iss.replace("127.0.0.1", "[::ffff:127.0.0.1]")),
        ),
        ("upper-case scheme", js(&iss.replacen("http", "HTTP", 1))),
        ("twice", js(&format!("{iss} {iss}"))),
    ];
    for (what, value) in &refused {
        let t = signed_claims(&h, now, |c| c.with("iss", value.clone()));
        assert_refused(&h, "/me", &t, &[], what).await;
    }
    assert_eq!(jwks_hits(&h), 0, "a foreign issuer never fetches keys");

    let accepted = [
        (
            "escaped solidus",
            format!("\"{}\"", iss.replace('/', "\\/")),
        ),
        ("escaped letter", format!("\"\\u0068ttp{}\"", &iss[4..])),
    ];
    for (what, value) in &accepted {
        let t = signed_claims(&h, now, |c| c.with("iss", value.clone()));
        assert_accepted(&h, "/me", &t, what).await;
    }
}

/// B7 variant (audience lists and spellings): our audience next to a `null`, number, list,
/// object or boolean member, or written with a NUL, spaces, a Cyrillic `а`, fullwidth letters or
/// a zero-width space, or joined with another audience by a space or comma. Proves a malformed
/// list never passes because it also holds `api`, and look-alikes never match; the escaped
/// spelling `\u0061pi`, a repeated `api`, and an 800-entry list that ends with `api` are
/// accepted, the same list without it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b7_variant_audience_lists_with_non_strings_or_lookalikes_are_refused() {
    assert_eq!(AUDIENCE, "api");
    let h = Harness::start().await;
    let now = now();
    let refused = [
        ("ours then null", r#"["api",null]"#),
        ("ours then a number", r#"["api",1]"#),
        ("ours then a list", r#"["api",["api"]]"#),
        ("ours then an object", r#"["api",{"aud":"api"}]"#),
        ("ours then a boolean", r#"["api",true]"#),
        ("NUL suffix", r#""api\u0000""#),
        ("trailing space", r#""api ""#),
        ("leading space", r#"" api""#),
        ("Cyrillic a", r#""\u0430pi""#),
        ("fullwidth", r#""\uff41\uff50\uff49""#),
        ("zero-width space", r#""api\u200b""#),
        ("space-joined in a list", r#"["other api"]"#),
        ("space-joined string", r#""other api""#),
        ("comma-joined string", r#""other,api""#),
    ];
    for (what, aud) in refused {
        let t = signed_claims(&h, now, |c| c.with("aud", aud));
        assert_refused(&h, "/me", &t, &[], what).await;
    }
    let many: Vec<String> = (0..800).map(|i| format!("a{i}")).collect();
    let without = serde_json::to_string(&many).expect("list");
    let t = signed_claims(&h, now, |c| c.with("aud", without));
    assert_refused(&h, "/me", &t, &[], "800 audiences, none ours").await;

    let mut with_ours = many;
    with_ours.push(AUDIENCE.to_owned());
    let with_ours = serde_json::to_string(&with_ours).expect("list");
    for (what, aud) in [
        ("escaped", r#""\u0061pi""#.to_owned()),
        ("twice", r#"["api","api"]"#.to_owned()),
        ("800 audiences, ours last", with_ours),
    ] {
        let t = signed_claims(&h, now, |c| c.with("aud", aud));
        assert_accepted(&h, "/me", &t, what).await;
    }
}

/// B10 variant (other JWT types): `typ` of a DPoP proof, a request object, an introspection
/// response, a key-binding JWT, a verifiable credential, an entity statement; `logout+jwt` in
/// other cases; `application/application/jwt`, media-type parameters, padded, empty, `JOSE`,
/// lists and objects. Proves only `JWT` and `at+jwt` (case-insensitive, optional
/// `application/`) are accepted as access tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_variant_other_jwt_types_and_typ_spellings_are_refused() {
    let h = Harness::start().await;
    let refused = [
        json!("dpop+jwt"),
        json!("application/dpop+jwt"),
        json!("oauth-authz-req+jwt"),
        json!("token-introspection+jwt"),
        json!("kb+jwt"),
        json!("vc+jwt"),
        json!("entity-statement+jwt"),
        json!("LOGOUT+JWT"),
        json!("Logout+Jwt"),
        json!("application/application/jwt"),
        json!("jwt; charset=utf-8"),
        json!(" JWT"),
        json!("JWT "),
        json!(""),
        json!("JOSE"),
        json!("JOSE+JSON"),
        json!("at+jwt\u{0}"),
        json!("x-at+jwt"),
        json!("application/"),
        json!("JWT,at+jwt"),
        json!(["JWT"]),
        json!({"typ": "JWT"}),
        json!(null),
        json!(true),
    ];
    for typ in refused {
        let t = token(&h).header("typ", typ.clone()).sign();
        assert_refused(&h, "/me", &t, &[], &typ.to_string()).await;
    }
    for typ in [
        "jwt",
        "AT+JWT",
        "application/jwt",
        "application/at+jwt",
        "Application/at+jwt",
        "APPLICATION/JWT",
    ] {
        let t = token(&h).header("typ", json!(typ)).sign();
        assert_accepted(&h, "/me", &t, typ).await;
    }
}

/// B10 variant (security event tokens): any token with an `events` claim (RFC 8417), such as
/// a back-channel logout token, whatever its `typ` says (none, `JWT`, `at+jwt`) and whatever
/// `events` holds (the logout event, another event, an empty object, a string, null).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_variant_security_event_tokens_are_refused_whatever_their_type() {
    let h = Harness::start().await;
    let events = [
        json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        json!({"https://schemas.openid.net/secevent/risc/event-type/sessions-revoked": {}}),
        json!({}),
        json!("logout"),
        json!(null),
    ];
    for event in events {
        for typ in [None, Some("JWT"), Some("at+jwt")] {
            let mut t = token(&h).claim("events", event.clone());
            t = match typ {
                Some(typ) => t.header("typ", json!(typ)),
                None => t.remove_header("typ"),
            };
            assert_refused(&h, "/me", &t.sign(), &[], &format!("{event} {typ:?}")).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// C. Scopes and claim constraints

/// C1 variant (separators that are not U+0020): `scope` and `scp` (string form) holding
/// `<other><sep>admin` where the separator is NBSP, ideographic or em space, line/next-line
/// separators, CR, VT, FF, NUL, BOM, zero-width space, Ogham space, `+`, `%20`, `;` or `|`, and
/// look-alikes of `admin` (fullwidth, Cyrillic, combining accent, soft hyphen, NUL, BOM). Proves
/// each is 403 `insufficient_scope` naming `admin`, without echoing the claim, while plain
/// (repeated) spaces do separate scopes in both claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_variant_unicode_and_control_separators_do_not_split_scopes() {
    let h = Harness::start().await;
    let marker = "zzmarkerscope";
    let with = |claim: &str, value: &str| {
        token(&h)
            .claim(claim, json!(value))
            .claim("groups", json!(["admins"]))
            .sign()
    };
    let separators = [
        "\u{a0}", "\u{3000}", "\u{2003}", "\u{2028}", "\u{85}", "\r", "\u{b}", "\u{c}", "\u{0}",
        "\u{feff}", "\u{200b}", "\u{1680}", "+", "%20", ";", "|",
    ];
    for sep in separators {
        for claim in ["scope", "scp"] {
            let value = format!("{marker}{sep}admin");
            let what = format!("{claim}: {value:?}");
            assert_forbidden(
                &h,
                "/admin",
                &with(claim, &value),
                "insufficient_scope",
                &[marker, value.as_str()],
                &what,
            )
            .await;
        }
    }
    let lookalikes = [
        "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}",
        "\u{430}dmin",
        "admi\u{301}n",
        "admin\u{ad}",
        "admin\u{0}",
        "\u{feff}admin",
    ];
    for value in lookalikes {
        for claim in ["scope", "scp"] {
            let what = format!("{claim}: {value:?}");
            assert_forbidden(
                &h,
                "/admin",
                &with(claim, value),
                "insufficient_scope",
                &[],
                &what,
            )
            .await;
        }
    }
    for value in ["read  admin", "admin", "  admin", "admin   read"] {
        for claim in ["scope", "scp"] {
            assert_accepted(
                &h,
                "/admin",
                &with(claim, value),
                &format!("{claim}: {value:?}"),
            )
            .await;
        }
    }
}

/// C2/C3 variant (`scp` lists and duplicated scope claims): `scp` entries are whole scopes, so
/// `["read admin"]`, `["admin "]`, `["Admin"]`, `[["admin"]]`, `[{"admin":true}]`,
/// `["admin,read"]`, `{"0":"admin"}`, `[null]` grant nothing (403). A payload with `scope`,
/// `scp` or `groups` twice whose last value does not satisfy the route is never granted (401 or
/// 403), whichever member a parser picks. `scp: "admin"` and `["read","admin"]` are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_variant_scp_entries_are_whole_scopes_and_duplicate_members_never_grant() {
    let h = Harness::start().await;
    let with_scp = |scp: Value| {
        token(&h)
            .claim("scp", scp)
            .claim("groups", json!(["admins"]))
            .sign()
    };
    for scp in [
        json!(["read admin"]),
        json!(["admin "]),
        json!([" admin"]),
        json!(["Admin"]),
        json!([["admin"]]),
        json!([{"admin": true}]),
        json!(["admin,read"]),
        json!(["admin\u{0}"]),
        json!({"0": "admin"}),
        json!([null]),
        json!([]),
        json!(""),
    ] {
        let what = format!("scp: {scp}");
        assert_forbidden(
            &h,
            "/admin",
            &with_scp(scp),
            "insufficient_scope",
            &[],
            &what,
        )
        .await;
    }
    for scp in [json!("admin"), json!(["read", "admin"])] {
        assert_accepted(&h, "/admin", &with_scp(scp.clone()), &scp.to_string()).await;
    }

    let now = now();
    let admins = r#"["admins"]"#;
    let duplicates = [
        (
            "scope admin then read",
            valid_claims(&h, now)
                .push("scope", js("admin"))
                .push("groups", admins)
                .push("scope", js("read")),
        ),
        (
            "scp [admin] then []",
            valid_claims(&h, now)
                .push("scp", r#"["admin"]"#)
                .push("groups", admins)
                .push("scp", "[]"),
        ),
        (
            "scope escaped-name duplicate",
            valid_claims(&h, now)
                .push("scope", js("admin"))
                .push("groups", admins)
                .push(r"sc\u006fpe", js("read")),
        ),
        (
            "groups [admins] then [users]",
            valid_claims(&h, now)
                .push("scope", js("admin"))
                .push("groups", admins)
                .push("groups", r#"["users"]"#),
        ),
    ];
    for (what, claims) in &duplicates {
        let t = sign(&h, &provider_header(&h), claims);
        assert_never_granted(&h, "/admin", &t, what).await;
    }
}

/// C4 variant (claim paths through the token's shape): for the rule `realm_access.roles` ∋ `ops`,
/// `realm_access` as a list of objects, `roles` as a string, a nested list, an object, a
/// pseudo-array `{"0":"ops"}`, a list of objects, look-alike values or keys, null or a boolean,
/// `realm_access` itself a string or list, `ops` one level too deep or under `resource_access`;
/// and `realm_access` or `roles` given twice with a non-matching last value. Proves paths only
/// walk objects, values must be list members of the exact type and text, and duplicates never
/// grant; an escaped key name (`r\u006fles`) is the same key and is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_variant_claim_paths_never_traverse_arrays_or_coerce_types() {
    let h = Harness::start().await;
    let shapes = [
        json!([{"roles": ["ops"]}]),
        json!({"roles": "ops"}),
        json!({"roles": [["ops"]]}),
        json!({"roles": {"ops": true}}),
        json!({"roles": {"0": "ops"}}),
        json!({"roles": [{"name": "ops"}]}),
        json!({"roles": ["ops\u{0}"]}),
        json!({"roles": ["\u{ff2f}\u{ff30}\u{ff33}"]}),
        json!({"roles": [" ops"]}),
        json!({"Roles": ["ops"]}),
        json!({"roles ": ["ops"]}),
        json!({"roles": null}),
        json!({"roles": true}),
        json!("ops"),
        json!(["ops"]),
        json!({"realm_access": {"roles": ["ops"]}}),
    ];
    for shape in shapes {
        let t = token(&h).claim("realm_access", shape.clone()).sign();
        assert_forbidden(&h, "/ops", &t, "access_denied", &[], &shape.to_string()).await;
    }
    let elsewhere = token(&h)
        .claim(
            "resource_access",
            json!({"realm_access": {"roles": ["ops"]}}),
        )
        .sign();
    assert_forbidden(
        &h,
        "/ops",
        &elsewhere,
        "access_denied",
        &[],
        "resource_access",
    )
    .await;

    let now = now();
    let duplicates = [
        (
            "realm_access twice",
            valid_claims(&h, now)
                .push("realm_access", r#"{"roles":["ops"]}"#)
                .push("realm_access", r#"{"roles":["dev"]}"#),
        ),
        (
            "roles twice inside realm_access",
            valid_claims(&h, now).push("realm_access", r#"{"roles":["ops"],"roles":["dev"]}"#),
        ),
        (
            "roles then escaped-name roles",
            valid_claims(&h, now).push("realm_access", r#"{"roles":["ops"],"r\u006fles":["dev"]}"#),
        ),
    ];
    for (what, claims) in &duplicates {
        let t = sign(&h, &provider_header(&h), claims);
        assert_never_granted(&h, "/ops", &t, what).await;
    }

    let escaped = valid_claims(&h, now).push("realm_access", r#"{"r\u006fles":["ops"]}"#);
    let t = sign(&h, &provider_header(&h), &escaped);
    assert_accepted(&h, "/ops", &t, "escaped key name").await;
    let t = token(&h)
        .claim("realm_access", json!({"roles": ["ops"]}))
        .sign();
    assert_accepted(&h, "/ops", &t, "control").await;
}

/// C4 variant (values that only resemble a list of `admins`): a pseudo-array object, a list of
/// objects, a nested list beside another group, NUL / zero-width / Cyrillic / upper-case / padded
/// look-alikes, and strings holding `admins users` or a JSON-encoded list. Proves they are 403
/// `access_denied` in strict mode, and that string-as-list mode only ever compares the whole
/// string (no splitting on spaces, no JSON decoding, no trimming).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_variant_group_values_that_only_resemble_a_list_of_admins_are_refused() {
    let with_groups =
        |h: &Harness, groups: Value| token(h).scope("admin").claim("groups", groups).sign();
    let strict = Harness::start().await;
    for groups in [
        json!({"0": "admins", "length": 1}),
        json!([{"name": "admins"}]),
        json!([["admins"], "users"]),
        json!(["admins\u{0}"]),
        json!(["admins\u{200b}"]),
        json!(["\u{430}dmins"]),
        json!(["ADMINS"]),
        json!([" admins"]),
        json!("admins users"),
        json!("[\"admins\"]"),
    ] {
        let t = with_groups(&strict, groups.clone());
        assert_forbidden(
            &strict,
            "/admin",
            &t,
            "access_denied",
            &[],
            &groups.to_string(),
        )
        .await;
    }

    let idp = MockProvider::start().await.expect("provider");
    let lenient = Harness::with(idp, |b| b.string_claims_as_lists(true), None).await;
    for groups in [
        json!("admins users"),
        json!("users admins"),
        json!("[\"admins\"]"),
        json!(" admins"),
        json!("admins\u{0}"),
    ] {
        let t = with_groups(&lenient, groups.clone());
        let what = format!("lenient: {groups}");
        assert_forbidden(&lenient, "/admin", &t, "access_denied", &[], &what).await;
    }
    let t = with_groups(&lenient, json!("admins"));
    assert_accepted(&lenient, "/admin", &t, "lenient control").await;
}

/// C5 variant (booleans): `email_verified` as `"TRUE"`, `"True"`, `"yes"`, `1.0`, an object, a
/// list of the string `"true"` or of `1`, or the escaped string `"\u0074rue"`; and given twice
/// with `false` last. Proves a boolean constraint is met only by the JSON boolean `true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_variant_boolean_constraints_need_the_json_boolean() {
    let h = Harness::start().await;
    for value in [
        json!("TRUE"),
        json!("True"),
        json!("yes"),
        json!(1.0),
        json!({"value": true}),
        json!(["true"]),
        json!([1]),
    ] {
        let t = token(&h).claim("email_verified", value.clone()).sign();
        assert_forbidden(
            &h,
            "/verified",
            &t,
            "access_denied",
            &[],
            &value.to_string(),
        )
        .await;
    }
    let now = now();
    let escaped = valid_claims(&h, now).push("email_verified", r#""\u0074rue""#);
    let t = sign(&h, &provider_header(&h), &escaped);
    assert_forbidden(&h, "/verified", &t, "access_denied", &[], "escaped string").await;
    let twice = valid_claims(&h, now)
        .push("email_verified", "true")
        .push("email_verified", "false");
    let t = sign(&h, &provider_header(&h), &twice);
    assert_never_granted(&h, "/verified", &t, "true then false").await;
}

/// C6 variant (look-alikes of the `Bearer` scheme): `Bearer:`, `Bearer=`, `Bearer-`, tab, NBSP or
/// ideographic space as separator, Cyrillic `е`, `Bearerx`, `Bear`, a zero-width space, and the
/// `DPoP`, `MAC`, `OAuth`, `JWT`, `Token` schemes, each followed by a valid token. Proves none of
/// them authenticates: 401 with a `Bearer` challenge (or 400 for a malformed header), no echo,
/// and the optional route sees no user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_variant_scheme_lookalikes_are_not_the_bearer_scheme() {
    let h = Harness::start().await;
    let valid = token(&h).sign();
    let prefixes = [
        "Bearer:",
        "Bearer: ",
        "Bearer=",
        "Bearer-",
        "Bearer\t",
        "Bearer\u{a0}",
        "Bearer\u{3000}",
        "B\u{435}arer ",
        "Bearer\u{200b} ",
        "Bearerx ",
        "Bear ",
        "Bearer_ ",
        "DPoP ",
        "MAC ",
        "OAuth ",
        "JWT ",
        "Token ",
    ];
    for prefix in prefixes {
        let header = authorization(format!("{prefix}{valid}"));
        let reply = both_with(&h, "/me", std::slice::from_ref(&header)).await;
        let what = format!("{prefix:?}");
        // Another scheme is no token (401, bare challenge); a mangled `Bearer` may also be
        // called malformed (400) or an invalid token (401).
        match (reply.status, reply.challenge.as_deref()) {
            (401, Some("Bearer")) => {}
            _ => assert_refused_or_malformed(&reply, &what),
        }
        assert_not_echoed(&reply, &valid, &[]);
        assert_anonymous(&h, &[header], &what).await;
    }
    assert_accepted(&h, "/me", &valid, "control").await;
}

/// C6 variant (credentials outside the RFC 6750 `b64token` syntax): a trailing comma, two
/// credentials or an auth-param in one value, tab after the space, obs-text and Latin-1 bytes,
/// a UTF-8 letter or NBSP after the token, quotes, `;`, `access_token="..."`. Proves each is
/// refused (400 `invalid_request` for a malformed header, 401 `invalid_token` otherwise) on both
/// frameworks without echo; two spaces after the scheme (RFC 7235 `1*SP`) still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_variant_authorization_values_outside_the_b64token_syntax_are_refused() {
    let h = Harness::start().await;
    let valid = token(&h).sign();
    let mid = valid.len() / 2;
    let latin1 = [
        format!("Bearer {}", &valid[..mid]).as_bytes(),
        &b"\xe9"[..],
        &valid.as_bytes()[mid..],
    ]
    .concat();
    let cases: [(&str, Vec<u8>, &[u16]); 12] = [
        ("trailing comma", format!("Bearer {valid},").into(), &[400]),
        (
            "two credentials",
            format!("Bearer {valid}, Bearer {valid}").into(),
            &[400],
        ),
        (
            "auth-param after the token",
            format!("Bearer {valid}, realm=\"api\"").into(),
            &[400],
        ),
        ("space then tab", format!("Bearer \t{valid}").into(), &[400]),
        (
            "obs-text byte after the token",
            [format!("Bearer {valid}").as_bytes(), &b"\xff"[..]].concat(),
            &[400],
        ),
        ("Latin-1 byte inside", latin1, &[400]),
        (
            "UTF-8 letter after the token",
            format!("Bearer {valid}\u{e9}").into(),
            &[400, 401],
        ),
        (
            "NBSP after the token",
            format!("Bearer {valid}\u{a0}").into(),
            &[400, 401],
        ),
        (
            "double quotes",
            format!("Bearer \"{valid}\"").into(),
            &[401],
        ),
        ("semicolon", format!("Bearer {valid};").into(), &[401]),
        (
            "as a quoted parameter",
            format!("Bearer access_token=\"{valid}\"").into(),
            &[400, 401],
        ),
        (
            "lower-case scheme and a trailing comma",
            format!("bearer {valid},").into(),
            &[400],
        ),
    ];
    for (what, value, expected) in cases {
        let header = authorization(&value);
        let reply = both_with(&h, "/me", std::slice::from_ref(&header)).await;
        assert!(expected.contains(&reply.status), "{what}: {reply:?}");
        assert_refused_or_malformed(&reply, what);
        assert_not_echoed(&reply, &valid, &[]);
        assert_anonymous(&h, &[header], what).await;
    }
    let two_spaces = authorization(format!("Bearer  {valid}"));
    assert_eq!(both_with(&h, "/me", &[two_spaces]).await.status, 200);
}

/// C6 variant (several `Authorization` headers, mixed): a valid bearer header together with a
/// `Basic` one (either order), an empty one (either order), a bare `Bearer`, or another bearer
/// token. Proves the request is a 400 `invalid_request` whatever the other header holds: the
/// library never picks one credential out of several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_variant_several_authorization_headers_are_an_invalid_request_whatever_they_hold() {
    let h = Harness::start().await;
    let valid = format!("Bearer {}", token(&h).sign());
    let other = format!("Bearer {}", token(&h).sub("mallory").sign());
    let combinations: [(&str, &str, &str); 7] = [
        ("bearer then basic", &valid, "Basic YWxpY2U6c2VjcmV0"),
        ("basic then bearer", "Basic YWxpY2U6c2VjcmV0", &valid),
        ("bearer then empty", &valid, ""),
        ("empty then bearer", "", &valid),
        ("bearer then a bare scheme", &valid, "Bearer"),
        ("bearer then another bearer", &valid, &other),
        ("garbage then bearer", "Bearer x.y.z", &valid),
    ];
    for (what, first, second) in combinations {
        let headers = [authorization(first), authorization(second)];
        let reply = both_with(&h, "/me", &headers).await;
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        assert_eq!(reply.error(), Some("invalid_request"), "{what}");
        assert_not_echoed(&reply, &valid, &[other.as_str()]);
        assert_anonymous(&h, &headers, what).await;
    }
}

/// C8 variant (tokens outside `Authorization`): a valid token in `Proxy-Authorization`, a
/// cookie, `X-Access-Token`, `X-Forwarded-Access-Token`, `X-Auth-Request-Access-Token`,
/// `X-Authorization`, `Authentication`, the form-encoded body (RFC 6750 section 2.2) or the
/// query of a POST. Proves none is read: 401 with the bare `Bearer` challenge on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c8_variant_tokens_outside_the_authorization_header_are_ignored() {
    let h = Harness::start().await;
    let valid = token(&h).sign();
    let bearer = format!("Bearer {valid}");
    let elsewhere: [(&'static str, String); 7] = [
        ("proxy-authorization", bearer.clone()),
        ("cookie", format!("access_token={valid}")),
        ("x-access-token", valid.clone()),
        ("x-forwarded-access-token", valid.clone()),
        ("x-auth-request-access-token", valid.clone()),
        ("x-authorization", bearer.clone()),
        ("authentication", bearer),
    ];
    for (name, value) in &elsewhere {
        let header = (*name, HeaderValue::from_str(value).expect("header value"));
        let reply = both_with(&h, "/me", &[header]).await;
        assert_eq!(reply.status, 401, "{name}: {reply:?}");
        assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{name}");
    }
    for fw in FRAMEWORKS {
        let form = h
            .client()
            .post(h.url(fw, &format!("/upload?access_token={valid}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={valid}"))
            .send()
            .await
            .expect("request reaches the test server");
        let reply = into_reply(form).await;
        assert_eq!(reply.status, 401, "{fw:?}: {reply:?}");
        assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{fw:?}");
        assert_not_echoed(&reply, &valid, &[]);
    }
}

/// C6 variant (obsolete line folding, RFC 9112 section 5.2): an `Authorization` header whose value
/// continues on a folded line, sent over a raw connection, with the token split at the fold or
/// wholly on the continuation line. Proves a folded header never authenticates: the answer is
/// a 4xx, never 200 or 5xx, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_variant_a_folded_authorization_header_never_authenticates() {
    let h = Harness::start().await;
    let valid = token(&h).sign();
    let (input, signature) = valid.rsplit_once('.').expect("a JWS");
    let folds = [
        format!("Authorization: Bearer {input}.\r\n {signature}\r\n"),
        format!("Authorization: Bearer\r\n {valid}\r\n"),
        format!("Authorization: Bearer {input}\r\n\t.{signature}\r\n"),
    ];
    for fw in FRAMEWORKS {
        for fold in &folds {
            let mut stream = tokio::net::TcpStream::connect(h.addr(fw))
                .await
                .expect("connect");
            let request = format!("GET /me HTTP/1.1\r\nHost: x\r\n{fold}Connection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("send the request");
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
                    .await
                    .expect("answered in time");
            let answer = String::from_utf8_lossy(&answer);
            let status = answer.get(9..12).unwrap_or_default();
            assert!(
                read.is_err() || answer.is_empty() || status.starts_with('4'),
                "{fw:?}: a folded header must be refused: {answer}"
            );
            assert!(!answer.contains(signature), "{fw:?}: echo");
        }
    }
}
