//! SECURITY.md group A: JOSE parsing and signature checks of the bearer middleware, end to end
//! over HTTP against the axum and the actix-web application.
//!
//! Every refused token gets `401` with `error="invalid_token"` from both frameworks (never 200 or
//! 500), the answer never echoes the token or an attacker-chosen header value, and the provider's
//! JWKS endpoint sees no more requests than the case allows. Forgeries are built so that a lax
//! verifier would accept them: wherever possible the signature is valid for *some* key, and only
//! the rule under test stands between the token and a 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self as aws_sig, RsaPublicKeyComponents, UnparsedPublicKey};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oidc_auth::testing::{MockProvider, SigningAlg};
use oidc_auth::{Algorithm, ErrorKind, ManualClock, OidcAuth};
use oidc_auth_tests::jose::{
    SHA256_DIGEST_INFO, b64, big_mul, der, der_uint, hex, jwks_hits, pem, pkcs1_encode,
    published_jwk, rsa_components, rsa_public_der, split_signature, with_signature,
};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, Reply, assert_invalid_token, assert_not_echoed,
    base_config,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers: token crafting, assertions, and a little DER and big-integer arithmetic.

/// The harness's token size limit; longer `Authorization` headers may be refused by the HTTP
/// server itself (431) before the library sees them.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The order n of the P-256 group.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
/// The field prime p of P-256 (larger than n).
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
/// The order L of the Ed25519 base point, big-endian.
const ED25519_L: &str = "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed";

const SHA1_DIGEST_INFO: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("time fits i64")
}

/// Claims that pass every registered-claim check of the harness.
fn claims(idp: &MockProvider) -> Value {
    let now = unix_now();
    json!({"iss": idp.issuer(), "sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 3600})
}

/// A header naming `alg` and `kid`, as the provider would write it.
fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid})
}

/// `header` and valid claims, signed by the provider's key `kid` (with that key's own
/// algorithm, whatever `header` says).
fn signed(idp: &MockProvider, header: &Value, kid: &str) -> String {
    idp.sign_raw(
        header.to_string().as_bytes(),
        claims(idp).to_string().as_bytes(),
        kid,
    )
}

/// `b64url(header).b64url(payload)`: the bytes a signature covers.
fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// `header` and valid claims with a signature supplied by the caller.
fn forged(idp: &MockProvider, header: &Value, signature: &[u8]) -> String {
    let input = signing_input(
        header.to_string().as_bytes(),
        claims(idp).to_string().as_bytes(),
    );
    format!("{input}.{}", b64(signature))
}

/// A valid token of the harness: right issuer and audience, signed with the current key.
fn valid_token(h: &Harness) -> String {
    h.idp.token().audience(AUDIENCE).sign()
}

/// Sends `token` to both frameworks and asserts `200` for subject `alice`.
async fn assert_accepted(h: &Harness, token: &str) {
    let reply = h.bearer_both("/me", token).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["sub"], "alice", "{reply:?}");
}

/// Loads the JWKS with a valid token, so that later JWKS hits count refetches only.
async fn warm_up(h: &Harness) {
    assert_accepted(h, &valid_token(h)).await;
}

/// Asserts both frameworks refuse `token` with 401 `invalid_token` (or, for a token longer than
/// the limit, 431 from the HTTP server), without echoing the token or any of `echoes`.
async fn assert_rejected(h: &Harness, token: &str, echoes: &[&str]) {
    if token.len() > MAX_TOKEN_BYTES {
        for framework in FRAMEWORKS {
            let reply = h.bearer(framework, "/me", token).await;
            assert_refused_oversized(&reply);
            assert_not_echoed(&reply, token, echoes);
        }
    } else {
        let reply = h.bearer_both("/me", token).await;
        assert_invalid_token(&reply);
        assert_not_echoed(&reply, token, echoes);
    }
}

/// 401 `invalid_token` from the library, or 431 from a server that refuses the header first.
fn assert_refused_oversized(reply: &Reply) {
    match reply.status {
        401 => assert_invalid_token(reply),
        431 => {}
        _ => panic!("an oversized token must get 401 or 431: {reply:?}"),
    }
}

/// Big-endian `a + b` or `a - b` in `a.len()` bytes; panics on overflow or underflow.
fn big_add_sub(a: &[u8], b: &[u8], subtract: bool) -> Vec<u8> {
    let mut out = a.to_vec();
    let mut carry = 0i32;
    for i in 0..out.len() {
        let at = out.len() - 1 - i;
        let other = b.len().checked_sub(i + 1).map_or(0, |k| i32::from(b[k]));
        let other = if subtract { -other } else { other };
        let total = i32::from(out[at]) + other + carry;
        out[at] = total.rem_euclid(256) as u8;
        carry = total.div_euclid(256);
    }
    assert!(carry == 0 && b.len() <= a.len(), "big integer overflow");
    out
}

/// An RSA public key with e = 3 made for one encoded message `em`: with `n = s³ − em` and
/// `n ≤ s³ < 2n`, `s³ mod n = em`, so `s` is a signature of `em`. `n` is not a product of two
/// primes, but verification cannot tell; this lets a test sign any encoded message, malformed
/// ones included, under a key of exactly `8 * em.len()` bits.
struct CubeKey {
    n: Vec<u8>,
    signature: Vec<u8>,
}

impl CubeKey {
    fn new(em: &[u8]) -> Self {
        let len = em.len();
        let bits = 8 * len;
        // s = c * 2^m with c³ in [2^r, 2^(r+1)) puts s³ in [2^(bits-1), 2^bits).
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
        let n = big_add_sub(low, em, true);
        assert!(n[0] & 0x80 != 0, "n has exactly {bits} bits");
        Self { n, signature: s }
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(&self.n), "e": "Aw"})
    }

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

/// Turns a correct EMSA-PKCS1-v1_5 encoding (first argument) of a message (second) into a
/// malformed one.
type PaddingEdit = fn(&mut Vec<u8>, &[u8]);

/// A token whose signature is valid under a fresh [`CubeKey`] for the encoded message that
/// `encode` makes of its signing input; returns the token and the key to publish.
fn cube_signed(
    idp: &MockProvider,
    kid: &str,
    modulus_len: usize,
    encode: impl FnOnce(&[u8]) -> Vec<u8>,
) -> (String, CubeKey) {
    let input = signing_input(
        header("RS256", kid).to_string().as_bytes(),
        claims(idp).to_string().as_bytes(),
    );
    let em = encode(input.as_bytes());
    assert_eq!(em.len(), modulus_len);
    let key = CubeKey::new(&em);
    let token = format!("{input}.{}", b64(&key.signature));
    (token, key)
}

/// Counts the TCP connections made to a local listener; nothing is ever answered.
async fn connection_counter() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind counter");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (base, count)
}

// ---------------------------------------------------------------------------------------------
// A. JOSE parsing and crypto

/// A1: `alg: none` in any spelling, with or without a signature, is refused before any key fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_alg_none_in_any_spelling_is_refused_without_fetching_keys() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();

    for alg in ["none", "None", "NONE", "nOnE", " none", "none "] {
        let unsigned = forged(&h.idp, &json!({"alg": alg, "typ": "JWT"}), b"");
        let with_kid = forged(&h.idp, &header(alg, &kid), b"");
        let with_real_signature = signed(&h.idp, &header(alg, &kid), &kid);
        for token in [unsigned, with_kid, with_real_signature] {
            assert_rejected(&h, &token, &[]).await;
        }
    }

    assert_eq!(jwks_hits(&h), 0, "alg none must not load keys");
}

/// A2: HS256/384/512 keyed with the IdP's RSA public key (PEM, DER, JWK `n`) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_hmac_keyed_with_the_rsa_public_key_is_refused() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();
    let jwk = published_jwk(h.client(), &h.idp, &kid).await;
    let (pkcs1, spki) = rsa_public_der(&jwk);
    let (n, _) = rsa_components(&jwk);
    let spki_pem = pem("PUBLIC KEY", &spki);
    let secrets: Vec<Vec<u8>> = vec![
        spki_pem.clone().into_bytes(),
        spki_pem.trim_end().as_bytes().to_vec(),
        pem("RSA PUBLIC KEY", &pkcs1).into_bytes(),
        spki,
        pkcs1,
        n,
        jwk["n"].as_str().expect("n").as_bytes().to_vec(),
        jwk.to_string().into_bytes(),
        json!({"keys": [jwk]}).to_string().into_bytes(),
    ];
    let before = jwks_hits(&h);

    for (alg, hmac_alg) in [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ] {
        for secret in &secrets {
            for head in [header(alg, &kid), json!({"alg": alg, "typ": "JWT"})] {
                let input = signing_input(
                    head.to_string().as_bytes(),
                    claims(&h.idp).to_string().as_bytes(),
                );
                let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
                let token = format!("{input}.{}", b64(tag));
                assert_rejected(&h, &token, &[]).await;
            }
        }
    }

    assert_eq!(
        jwks_hits(&h) - before,
        0,
        "HS* must be refused before any key lookup"
    );
}

/// A3: the header `alg` must be allowed and match the key: no RS256 with a PS256 or EC key, no
/// RS512 or ES256K outside the allowlist, no case or type variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3_alg_must_be_allowed_and_match_the_published_key() {
    let idp = MockProvider::start().await.expect("provider");
    let rsa_kid = idp.current_kid();
    let ec_kid = idp.add_key(SigningAlg::ES256);
    let rs512_kid = idp.add_key(SigningAlg::RS512);
    let client = reqwest::Client::new();
    let mut ps256_only = published_jwk(&client, &idp, &rsa_kid).await;
    ps256_only["kid"] = json!("ps256-only");
    ps256_only["alg"] = json!("PS256");
    idp.publish_raw_jwk(ps256_only);
    let allowed = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];
    let h = Harness::with(idp, |b| b.algorithms(allowed), None).await;
    warm_up(&h).await;
    let before = jwks_hits(&h);

    // A valid PKCS#1 v1.5 signature by the key published as `ps256-only`.
    let declared_pss = signed(&h.idp, &header("RS256", "ps256-only"), &rsa_kid);
    // An RSA signature claiming the kid of an EC key.
    let rsa_on_ec = signed(&h.idp, &header("RS256", &ec_kid), &rsa_kid);
    // A PKCS#1 v1.5 signature labelled PS256 on an RS256 key.
    let pss_on_pkcs1 = signed(&h.idp, &header("PS256", &rsa_kid), &rsa_kid);
    // A genuine RS512 token from a published RS512 key, outside the allowlist.
    let rs512 = h.idp.token().audience(AUDIENCE).kid(&rs512_kid).sign();
    let es256k = signed(&h.idp, &header("ES256K", &ec_kid), &ec_kid);
    for token in [declared_pss, rsa_on_ec, pss_on_pkcs1, rs512, es256k] {
        assert_rejected(&h, &token, &["ES256K"]).await;
    }
    for alg in [
        json!("rs256"),
        json!("Rs256"),
        json!("RS256 "),
        json!("RS256\u{0}"),
        json!(["RS256"]),
        json!({"name": "RS256"}),
        json!(256),
        json!(null),
        json!(""),
    ] {
        let token = h.idp.token().audience(AUDIENCE).header("alg", alg).sign();
        assert_rejected(&h, &token, &[]).await;
    }
    let no_alg = h.idp.token().audience(AUDIENCE).remove_header("alg").sign();
    assert_rejected(&h, &no_alg, &[]).await;

    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A4: a `jwk` header carrying the attacker's key is ignored (Wycheproof JWS tc 32).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_embedded_jwk_header_is_ignored() {
    let h = Harness::start().await;
    let real_kid = h.idp.current_kid();
    let attacker = MockProvider::start().await.expect("attacker");
    let attacker_ec = MockProvider::start_with_alg(SigningAlg::ES256)
        .await
        .expect("attacker");
    let (rsa_kid, ec_kid) = (attacker.current_kid(), attacker_ec.current_kid());
    let rsa_jwk = published_jwk(h.client(), &attacker, &rsa_kid).await;
    let ec_jwk = published_jwk(h.client(), &attacker_ec, &ec_kid).await;
    let payload = claims(&h.idp).to_string();
    warm_up(&h).await;
    let before = jwks_hits(&h);

    let headers = [
        (
            &attacker,
            &rsa_kid,
            json!({"alg": "RS256", "kid": rsa_kid, "jwk": rsa_jwk}),
        ),
        (
            &attacker,
            &rsa_kid,
            json!({"alg": "RS256", "kid": real_kid, "jwk": rsa_jwk}),
        ),
        (&attacker, &rsa_kid, json!({"alg": "RS256", "jwk": rsa_jwk})),
        (
            &attacker_ec,
            &ec_kid,
            json!({"alg": "ES256", "jwk": ec_jwk}),
        ),
        (
            &attacker_ec,
            &ec_kid,
            json!({"alg": "ES256", "kid": ec_kid, "jwk": ec_jwk}),
        ),
    ];
    for (signer, kid, head) in headers {
        let token = signer.sign_raw(head.to_string().as_bytes(), payload.as_bytes(), kid);
        assert_rejected(&h, &token, &[rsa_kid.as_str(), ec_kid.as_str()]).await;
    }

    assert!(
        jwks_hits(&h) - before <= 1,
        "at most one refetch of the provider's own JWKS"
    );
}

/// A5: `jku`, `x5u` and `x5c` are never fetched or trusted: a local listener sees no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a5_jku_x5u_and_x5c_are_never_fetched_or_trusted() {
    let h = Harness::start().await;
    warm_up(&h).await;
    let before = jwks_hits(&h);
    let real_kid = h.idp.current_kid();
    let attacker = MockProvider::start().await.expect("attacker");
    let attacker_kid = attacker.current_kid();
    let (base, connections) = connection_counter().await;
    let jwks_url = format!("{base}/jwks");
    let cert_url = format!("{base}/cert.pem");
    // Any DER the attacker likes; nothing may parse it, let alone trust it.
    let x5c = STANDARD.encode(der(0x30, &der(0x30, b"attacker certificate")));
    let payload = claims(&h.idp).to_string();

    for kid in [attacker_kid.as_str(), real_kid.as_str()] {
        for extra in [
            json!({"jku": jwks_url}),
            json!({"x5u": cert_url}),
            json!({"x5c": [x5c]}),
            json!({"x5c": [x5c], "x5t#S256": b64([7u8; 32])}),
            json!({"jku": jwks_url, "x5u": cert_url, "x5c": [x5c]}),
        ] {
            let mut head = header("RS256", kid);
            for (name, value) in extra.as_object().expect("object") {
                head[name] = value.clone();
            }
            let token = attacker.sign_raw(
                head.to_string().as_bytes(),
                payload.as_bytes(),
                &attacker_kid,
            );
            assert_rejected(&h, &token, &[&jwks_url, &cert_url]).await;
        }
    }

    // Give any background task the chance to misbehave before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a header URL was fetched (SSRF)"
    );
    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A6: hostile `kid` values (path traversal, SQL, 10 KB, CR/LF and quotes, non-strings) are
/// refused, never echoed, and cannot inject response headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_hostile_kid_values_are_refused_and_never_echoed() {
    let h = Harness::start().await;
    warm_up(&h).await;
    let before = jwks_hits(&h);
    let real_kid = h.idp.current_kid();
    let injection = "evil\r\nX-Injected: 1\r\n\"quoted\" 'single'";
    let string_kids = [
        "../../etc/passwd".to_owned(),
        "..%2f..%2fetc%2fpasswd".to_owned(),
        "' OR 1=1--".to_owned(),
        "\"; DROP TABLE keys;--".to_owned(),
        injection.to_owned(),
        "${jndi:ldap://127.0.0.1/a}".to_owned(),
        "<script>alert(1)</script>".to_owned(),
        "nul\u{0}byte".to_owned(),
        "ключ-🔑".to_owned(),
        format!("{real_kid} "),
        real_kid[..real_kid.len() - 1].to_owned(),
        format!("x{real_kid}"),
        String::new(),
        "k".repeat(4 * 1024),
        "k".repeat(10 * 1024),
    ];
    for kid in &string_kids {
        let token = h
            .idp
            .token()
            .audience(AUDIENCE)
            .header("kid", json!(kid))
            .sign();
        assert_rejected(&h, &token, &[kid]).await;
    }
    for kid in [
        json!(42),
        json!(1.5),
        json!({"kid": real_kid}),
        json!([real_kid]),
        json!(null),
        json!(true),
    ] {
        let token = h.idp.token().audience(AUDIENCE).header("kid", kid).sign();
        assert_rejected(&h, &token, &[]).await;
    }

    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .header("kid", json!(injection))
        .sign();
    for framework in FRAMEWORKS {
        let response = h
            .client()
            .get(h.url(framework, "/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("request reaches the test server");
        let headers = response.headers();
        assert!(
            !headers.contains_key("x-injected"),
            "{framework:?}: {headers:?}"
        );
        assert_eq!(headers.get_all("www-authenticate").iter().count(), 1);
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/json"), "{framework:?}");
    }
    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A7: an unknown kid is refused after at most one JWKS refetch, also once the cooldown allows one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a7_unknown_kid_is_refused_after_at_most_one_refetch() {
    let idp = MockProvider::start().await.expect("provider");
    let retired = idp.add_key(SigningAlg::RS256);
    idp.retire_key(&retired);
    let clock = ManualClock::new(unix_now());
    let h = Harness::with(idp, |b| b, Some(clock.clone())).await;
    warm_up(&h).await;
    let cooldown = h.auth.config().jwks_refetch_cooldown().as_secs();
    let unknown = |kid: &str| h.idp.token().audience(AUDIENCE).kid(kid).sign();

    let before = jwks_hits(&h);
    assert_rejected(&h, &unknown("no-such-key"), &["no-such-key"]).await;
    assert_rejected(&h, &unknown(&retired), &[]).await;
    assert!(jwks_hits(&h) - before <= 1, "within the cooldown");

    clock.advance(i64::try_from(cooldown).expect("cooldown") + 1);
    let before = jwks_hits(&h);
    for i in 0..5 {
        let kid = format!("unknown-{i}");
        assert_rejected(&h, &unknown(&kid), &[&kid]).await;
    }
    assert_rejected(&h, &unknown(&retired), &[]).await;
    assert!(
        jwks_hits(&h) - before <= 1,
        "one refetch at most after the cooldown"
    );
}

/// A8: a flood of 10 000 tokens that no loaded key decides causes at most one JWKS fetch per
/// cooldown, whatever the class of token: distinct unknown kids; the known kid under an
/// algorithm its key does not verify; no kid and an algorithm no published key fits. A flood
/// with the known kid and forged signatures, which the loaded key refuses, fetches nothing. All
/// are 401, including while a fetch is running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_a_flood_of_undecidable_tokens_fetches_at_most_once_per_cooldown() {
    for class in [
        "distinct unknown kids",
        "known kid, another alg",
        "no kid, no fitting key",
        "known kid, forged signature",
    ] {
        let clock = ManualClock::new(unix_now());
        let idp = MockProvider::start().await.expect("provider");
        let h = Harness::with(idp, |b| b, Some(clock.clone())).await;
        warm_up(&h).await;
        let cooldown =
            i64::try_from(h.auth.config().jwks_refetch_cooldown().as_secs()).expect("secs");
        let kid = h.idp.current_kid();
        // Distinct tokens: each differs in its signature bytes.
        let token = |i: usize| {
            let mut signature = [0x5a_u8; 256];
            signature[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let header = match class {
                "distinct unknown kids" => header("RS256", &format!("flood-{i}")),
                "known kid, another alg" => header("ES256", &kid),
                "no kid, no fitting key" => json!({"alg": "PS384", "typ": "JWT"}),
                _ => header("RS256", &kid),
            };
            let length = if header["alg"] == "ES256" { 64 } else { 256 };
            forged(&h.idp, &header, &signature[..length])
        };
        let before = jwks_hits(&h);

        clock.advance(cooldown + 1);
        let started = Instant::now();
        let tasks: Vec<_> = (0..10_000)
            .map(|i| {
                let (auth, token) = (h.auth.clone(), token(i));
                tokio::spawn(async move {
                    auth.validate(&token)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.kind())
                })
            })
            .collect();
        for task in tasks {
            let verdict = task.await.expect("task");
            assert_eq!(verdict, Err(ErrorKind::InvalidToken), "{class}");
        }
        let elapsed = started.elapsed();
        // A signature the loaded key refuses is decided without the network.
        let bound = usize::from(class != "known kid, forged signature");
        assert!(
            jwks_hits(&h) - before <= bound,
            "{class}: one fetch per cooldown"
        );
        assert!(
            elapsed < Duration::from_secs(30),
            "{class}: the flood took {elapsed:?}"
        );

        for i in 10_000..10_200 {
            assert_rejected(&h, &token(i), &[&format!("flood-{i}")]).await;
        }
        assert!(
            jwks_hits(&h) - before <= bound,
            "{class}: still within the same cooldown"
        );

        clock.advance(cooldown + 1);
        for i in 20_000..20_100 {
            assert_rejected(&h, &token(i), &[]).await;
        }
        assert!(
            jwks_hits(&h) - before <= 2 * bound,
            "{class}: one more fetch for the next cooldown at most"
        );
        assert_accepted(&h, &valid_token(&h)).await;
    }
}

/// A9: a token without kid is accepted when exactly one published key fits its alg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a9_kid_absent_token_is_accepted_when_one_published_key_fits() {
    let idp = MockProvider::start().await.expect("provider");
    let ec_kid = idp.add_key(SigningAlg::ES256);
    let ed_kid = idp.add_key(SigningAlg::EdDSA);
    let h = Harness::with(idp, |b| b, None).await;

    let rsa = h.idp.token().audience(AUDIENCE).remove_header("kid").sign();
    let ec = h
        .idp
        .token()
        .audience(AUDIENCE)
        .kid(&ec_kid)
        .remove_header("kid")
        .sign();
    let ed = h
        .idp
        .token()
        .audience(AUDIENCE)
        .kid(&ed_kid)
        .remove_header("kid")
        .sign();
    for token in [rsa, ec, ed] {
        assert_accepted(&h, &token).await;
    }
    assert_eq!(jwks_hits(&h), 1);
}

/// A10: a token without kid is refused when several published keys fit (documented choice), and
/// never verified with a key of another type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a10_kid_absent_token_is_refused_when_several_keys_or_none_of_its_type_fit() {
    let idp = MockProvider::start().await.expect("provider");
    let first = idp.current_kid();
    let second = idp.add_key(SigningAlg::RS256);
    let unpublished_ec = idp.add_key(SigningAlg::ES256);
    idp.retire_key(&unpublished_ec);
    let h = Harness::with(idp, |b| b, None).await;
    warm_up(&h).await;
    let before = jwks_hits(&h);
    let no_kid = |kid: &str| {
        h.idp
            .token()
            .audience(AUDIENCE)
            .kid(kid)
            .remove_header("kid")
            .sign()
    };

    assert_rejected(&h, &no_kid(&first), &[]).await;
    assert_rejected(&h, &no_kid(&second), &[]).await;
    assert_rejected(&h, &no_kid(&unpublished_ec), &[]).await;
    let es256_by_rsa = signed(&h.idp, &json!({"alg": "ES256", "typ": "JWT"}), &first);
    assert_rejected(&h, &es256_by_rsa, &[]).await;
    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");

    // Both keys work when the token names one.
    assert_accepted(&h, &h.idp.token().audience(AUDIENCE).kid(&second).sign()).await;
}

/// A11: any `crit` header (unknown extension, `b64`, not an array, empty) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11_crit_headers_are_refused() {
    let h = Harness::start().await;
    let variants = [
        json!({"crit": ["x-foo"], "x-foo": 1}),
        json!({"crit": ["x-foo"]}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": ["b64"], "b64": true}),
        json!({"b64": false}),
        json!({"crit": "b64", "b64": false}),
        json!({"crit": 1}),
        json!({"crit": null}),
        json!({"crit": {}}),
        json!({"crit": []}),
        json!({"crit": ["alg"]}),
        json!({"crit": ["exp"], "exp": 1}),
    ];
    for extra in variants {
        let mut builder = h.idp.token().audience(AUDIENCE);
        for (name, value) in extra.as_object().expect("object") {
            builder = builder.header(name, value.clone());
        }
        assert_rejected(&h, &builder.sign(), &["x-foo"]).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A12: JWE (five segments), nested `cty: JWT` and `zip` tokens are refused unopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a12_jwe_nested_and_compressed_tokens_are_refused_unopened() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();
    let payload = claims(&h.idp).to_string();
    let jwe = |head: Value| {
        let parts = [
            b64(head.to_string()),
            b64([1u8; 256]),
            b64([2u8; 12]),
            b64(&payload),
            b64([3u8; 16]),
        ];
        parts.join(".")
    };
    // Raw DEFLATE with one stored block: a real `zip: DEF` payload, uncompressed on the wire.
    let len = u16::try_from(payload.len()).expect("small payload");
    let mut deflated = vec![0x01];
    deflated.extend(len.to_le_bytes());
    deflated.extend((!len).to_le_bytes());
    deflated.extend(payload.as_bytes());
    let with = |name: &str, value: Value| {
        let mut head = header("RS256", &kid);
        head[name] = value;
        head
    };
    let inner = valid_token(&h);

    let tokens = [
        jwe(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid})),
        jwe(json!({"alg": "dir", "enc": "A128CBC-HS256"})),
        jwe(json!({"alg": "RS256", "kid": kid})),
        jwe(json!({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF", "cty": "JWT"})),
        signed(&h.idp, &with("enc", json!("A256GCM")), &kid),
        h.idp.sign_raw(
            with("cty", json!("JWT")).to_string().as_bytes(),
            inner.as_bytes(),
            &kid,
        ),
        signed(&h.idp, &with("cty", json!("JWT")), &kid),
        signed(&h.idp, &with("cty", json!("jwt")), &kid),
        h.idp.sign_raw(
            with("zip", json!("DEF")).to_string().as_bytes(),
            &deflated,
            &kid,
        ),
        signed(&h.idp, &with("zip", json!("DEF")), &kid),
    ];
    for token in tokens {
        assert_rejected(&h, &token, &[]).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A13: wrong segment counts, stray dots and 100 000 dots are refused with bounded work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a13_wrong_segment_counts_are_refused_with_bounded_work() {
    let h = Harness::start().await;
    let valid = valid_token(&h);
    let (input, _) = split_signature(&valid);
    let segments: Vec<&str> = valid.split('.').collect();
    let (head, body, sig) = (segments[0], segments[1], segments[2]);

    let tokens = [
        head.to_owned(),
        input.to_owned(),
        format!("{input}."),
        format!("{valid}."),
        format!("{valid}.{sig}"),
        format!("{valid}.."),
        format!(".{valid}"),
        format!("{head}..{sig}"),
        format!(".{body}.{sig}"),
        format!("{head}.{body}.{sig}.{head}.{body}"),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        "a".to_owned(),
        ".".repeat(100_000),
    ];
    for token in &tokens {
        assert_rejected(&h, token, &[]).await;
    }
    for huge in [".".repeat(100_000), "a.".repeat(5_000_000)] {
        let started = Instant::now();
        let refused = h
            .auth
            .validate(&huge)
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        assert_eq!(refused, Err(ErrorKind::InvalidToken));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "size is checked first"
        );
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A13: an empty bearer token is refused as an invalid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a13_empty_bearer_token_is_an_invalid_token() {
    let h = Harness::start().await;
    let refused = h.auth.validate("").await.map(|_| ()).map_err(|e| e.kind());
    assert_eq!(refused, Err(ErrorKind::InvalidToken));
    for authorization in ["Bearer ", "Bearer", "Bearer  ", "bearer \t"] {
        let axum = h.get(Framework::Axum, "/me", Some(authorization)).await;
        let actix = h.get(Framework::Actix, "/me", Some(authorization)).await;
        assert_eq!(axum.status, actix.status, "{axum:?} / {actix:?}");
        assert_invalid_token(&axum);
    }
    assert_eq!(jwks_hits(&h), 0);
}

/// A15: header or payload that is not a JSON object, not UTF-8, BOM-prefixed, followed by trailing
/// bytes, or not unpadded base64url is refused, even when the signature over it is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a15_segments_that_are_not_a_json_object_are_refused() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();
    let good_header = header("RS256", &kid).to_string().into_bytes();
    let good_payload = claims(&h.idp).to_string().into_bytes();
    let spoil = |good: &[u8]| -> Vec<Vec<u8>> {
        let text = std::str::from_utf8(good).expect("JSON is UTF-8");
        let mut invalid_utf8 = good.to_vec();
        invalid_utf8.insert(good.len() - 1, 0xff);
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        vec![
            b"[]".to_vec(),
            format!("[{text}]").into_bytes(),
            b"1".to_vec(),
            b"\"RS256\"".to_vec(),
            b"null".to_vec(),
            b"true".to_vec(),
            Vec::new(),
            invalid_utf8,
            [&[0xef, 0xbb, 0xbf][..], good].concat(),
            [good, b" x"].concat(),
            [good, b"{}"].concat(),
            [good, b"\0"].concat(),
            [&[0xff, 0xfe][..], &utf16].concat(),
            text.replace('{', "{\"a\":1,,").into_bytes(),
        ]
    };

    for bad in spoil(&good_header) {
        assert_rejected(&h, &h.idp.sign_raw(&bad, &good_payload, &kid), &[]).await;
    }
    for bad in spoil(&good_payload) {
        assert_rejected(&h, &h.idp.sign_raw(&good_header, &bad, &kid), &[]).await;
    }
    let valid = valid_token(&h);
    let segments: Vec<&str> = valid.split('.').collect();
    for token in [
        format!("{}=.{}.{}", segments[0], segments[1], segments[2]),
        format!("{}.{}==.{}", segments[0], segments[1], segments[2]),
        STANDARD.encode(b"{\"alg\":\"RS256\"}>?") + "." + segments[1] + "." + segments[2],
        valid.replace('-', "+").replace('_', "/") + "+/",
    ] {
        assert_rejected(&h, &token, &[]).await;
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A17: an Authorization header over 8 KiB and claims nested 10 000 levels deep are refused
/// quickly, without a stack overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a17_oversized_headers_and_deep_nesting_are_refused_quickly() {
    let h = Harness::start().await;
    let kid = h.idp.current_kid();
    let payload = claims(&h.idp).to_string();
    let nested = |depth: usize, open: &str, close: &str| {
        let deep = format!("{}{}", open.repeat(depth), close.repeat(depth));
        format!("{},\"deep\":{deep}}}", payload.trim_end_matches('}'))
    };
    let signed_payload = |payload: &str| {
        h.idp.sign_raw(
            header("RS256", &kid).to_string().as_bytes(),
            payload.as_bytes(),
            &kid,
        )
    };

    for size in [9 * 1024, 64 * 1024, 512 * 1024] {
        let padded = h
            .idp
            .token()
            .audience(AUDIENCE)
            .claim("pad", json!("x".repeat(size)))
            .sign();
        let started = Instant::now();
        assert_rejected(&h, &padded, &[]).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{size} bytes");
    }
    for (depth, open, close) in [
        (10_000, "[", "]"),
        (10_000, "{\"a\":", "}"),
        (2_000, "[", "]"),
        (600, "{\"a\":", "}"),
    ] {
        let deep_claims = signed_payload(&nested(depth, open, close));
        let mut deep_header = header("RS256", &kid).to_string();
        deep_header.pop();
        deep_header.push_str(&format!(
            ",\"x\":{}{}}}",
            open.repeat(depth),
            close.repeat(depth)
        ));
        let deep_header = h
            .idp
            .sign_raw(deep_header.as_bytes(), payload.as_bytes(), &kid);
        for token in [deep_claims, deep_header] {
            let started = Instant::now();
            assert_rejected(&h, &token, &[]).await;
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }

    // Without the size limit in the way, the JSON parser itself must stop at depth.
    let unbounded = OidcAuth::new(
        base_config(&h.idp)
            .max_token_bytes(1 << 20)
            .build()
            .expect("config"),
    );
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let token = signed_payload(&nested(10_000, open, close));
        let refused = unbounded
            .validate(&token)
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        assert_eq!(refused, Err(ErrorKind::InvalidToken));
    }
    assert_eq!(jwks_hits(&h), 0, "refused before any key lookup");
}

/// A18: ES256 with r = s = 0 (CVE-2022-21449), r or s equal to or above n, DER encoding, or a
/// 63/65-byte signature is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a18_malformed_ecdsa_signatures_are_refused() {
    let idp = MockProvider::start_with_alg(SigningAlg::ES256)
        .await
        .expect("provider");
    let h = Harness::with(idp, |b| b, None).await;
    warm_up(&h).await;
    let valid = valid_token(&h);
    let (_, signature) = split_signature(&valid);
    let (r, s) = signature.split_at(32);
    let (n, p) = (hex(P256_N), hex(P256_P));
    let zero = [0u8; 32];
    let ff = [0xffu8; 32];
    let before = jwks_hits(&h);

    let raw = |r: &[u8], s: &[u8]| [r, s].concat();
    let signatures = [
        raw(&zero, &zero),
        raw(&zero, s),
        raw(r, &zero),
        raw(&n, &n),
        raw(&n, s),
        raw(r, &n),
        raw(&p, s),
        raw(r, &p),
        raw(&ff, s),
        raw(r, &ff),
        der(0x30, &[der_uint(r), der_uint(s)].concat()),
        signature[..63].to_vec(),
        [&signature[..], &[0]].concat(),
        [&[0], &signature[..]].concat(),
        [&signature[..], &zero[..16]].concat(),
        raw(s, r),
    ];
    for signature in &signatures {
        assert_rejected(&h, &with_signature(&valid, signature), &[]).await;
    }
    let no_kid = h.idp.token().audience(AUDIENCE).remove_header("kid").sign();
    assert_rejected(&h, &with_signature(&no_kid, &[0u8; 64]), &[]).await;

    assert_eq!(jwks_hits(&h) - before, 0, "a known kid never refetches");
}

/// A19: RSA signatures that are truncated, extended, not below the modulus, or carry altered
/// PKCS#1 v1.5 padding are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_malformed_rsa_signatures_and_paddings_are_refused() {
    let idp = MockProvider::start().await.expect("provider");
    let real = published_jwk(&reqwest::Client::new(), &idp, &idp.current_kid()).await;
    let (n, _) = rsa_components(&real);
    let encode_with = |edit: PaddingEdit| {
        move |message: &[u8]| {
            let mut em = pkcs1_encode(message, 256);
            edit(&mut em, message);
            em
        }
    };
    let (control, control_key) = cube_signed(&idp, "e3-control", 256, encode_with(|_, _| {}));
    let paddings: [(&str, PaddingEdit); 8] = [
        ("block-type-2", |em, _| em[1] = 0x02),
        ("leading-01", |em, _| em[0] = 0x01),
        ("zero-in-padding", |em, _| em[40] = 0x00),
        ("no-separator", |em, _| {
            let at = em.len() - SHA256_DIGEST_INFO.len() - 33;
            em[at] = 0xff;
        }),
        ("short-padding-trailing-garbage", |em, message| {
            // Bleichenbacher 2006: 00 01 FF*8 00 DigestInfo hash, then garbage to the end.
            let mut forged = vec![
                0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
            ];
            forged.extend(SHA256_DIGEST_INFO);
            forged.extend_from_slice(digest::digest(&digest::SHA256, message).as_ref());
            forged.resize(em.len(), 0x42);
            *em = forged;
        }),
        ("sha1-digest", |em, message| {
            let mut t = SHA1_DIGEST_INFO.to_vec();
            t.extend_from_slice(
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, message).as_ref(),
            );
            let ps = em.len() - t.len() - 3;
            *em = [&[0x00, 0x01][..], &vec![0xff; ps], &[0x00], &t].concat();
        }),
        ("other-message", |em, _| {
            let last = em.len() - 1;
            em[last] ^= 0x01;
        }),
        ("sha512-oid-sha256-hash", |em, _| {
            // The last arc of the hash OID: 2.16.840.1.101.3.4.2.1 becomes .3 (SHA-512).
            let at = em.len() - 32 - SHA256_DIGEST_INFO.len() + 14;
            em[at] = 0x03;
        }),
    ];
    let mut bad_paddings = Vec::new();
    for (kid, edit) in paddings {
        let (token, key) = cube_signed(&idp, kid, 256, encode_with(edit));
        idp.publish_raw_jwk(key.jwk(kid));
        bad_paddings.push(token);
    }
    idp.publish_raw_jwk(control_key.jwk("e3-control"));
    let h = Harness::with(idp, |b| b, None).await;
    let (input, s) = split_signature(&control);
    assert!(control_key.verifies(&aws_sig::RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &s));
    // The hand-made key works end to end, so each refusal below is down to the padding.
    assert_accepted(&h, &control).await;
    let before = jwks_hits(&h);

    for token in &bad_paddings {
        assert_rejected(&h, token, &[]).await;
    }
    let s_plus_n = big_add_sub(&control_key.n, &s, false);
    let unpadded = s
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect::<Vec<_>>();
    for signature in [
        s_plus_n,
        [&[0u8][..], &s].concat(),
        s[1..].to_vec(),
        unpadded,
    ] {
        assert_rejected(&h, &with_signature(&control, &signature), &[]).await;
    }
    let valid = valid_token(&h);
    let (_, sig) = split_signature(&valid);
    let mut flipped_first = sig.clone();
    flipped_first[0] ^= 0x01;
    let mut flipped_last = sig.clone();
    flipped_last[255] ^= 0x80;
    let mut one = vec![0u8; 256];
    one[255] = 1;
    for signature in [
        sig[..255].to_vec(),
        [&sig[..], &[0]].concat(),
        [&[0], &sig[..]].concat(),
        vec![0xff; 256],
        n.clone(),
        big_add_sub(&n, &[1], true),
        vec![0; 256],
        one,
        flipped_first,
        flipped_last,
    ] {
        assert_rejected(&h, &with_signature(&valid, &signature), &[]).await;
    }

    assert_eq!(jwks_hits(&h) - before, 0, "known kids never refetch");
}

/// A19: an RSA key under 2048 bits in the JWKS is never loaded, so it can neither verify a token
/// nor make a kid-less token ambiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a19_rsa_key_under_2048_bits_is_never_loaded() {
    let idp = MockProvider::start().await.expect("provider");
    let (weak_token, weak_key) = cube_signed(&idp, "weak-1024", 128, |m| pkcs1_encode(m, 128));
    idp.publish_raw_jwk(weak_key.jwk("weak-1024"));
    let h = Harness::with(idp, |b| b, None).await;
    let (input, signature) = split_signature(&weak_token);
    let legacy = &aws_sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY;
    assert!(
        weak_key.verifies(legacy, input.as_bytes(), &signature),
        "a genuine 1024-bit signature"
    );

    assert_rejected(&h, &weak_token, &[]).await;
    // With the weak key skipped, one RS256 key is published: a kid-less token is unambiguous.
    let no_kid = h.idp.token().audience(AUDIENCE).remove_header("kid").sign();
    assert_accepted(&h, &no_kid).await;
}

/// A20: Ed25519 with a non-canonical S (S + L, high bits) or a small-order public key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a20_non_canonical_ed25519_signatures_and_small_order_keys_are_refused() {
    let idp = MockProvider::start_with_alg(SigningAlg::EdDSA)
        .await
        .expect("provider");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut identity_sign_bit = identity;
    identity_sign_bit[31] = 0x80;
    let mut identity_plus_p = [0xffu8; 32];
    identity_plus_p[0] = 0xee;
    identity_plus_p[31] = 0x7f;
    let mut minus_one = identity_plus_p;
    minus_one[0] = 0xec;
    let order8: [u8; 32] = hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
        .try_into()
        .expect("32 bytes");
    let small_order = [
        ("ed-identity", identity),
        ("ed-identity-sign-bit", identity_sign_bit),
        ("ed-identity-non-canonical", identity_plus_p),
        ("ed-order-2", minus_one),
        ("ed-order-4", [0u8; 32]),
        ("ed-order-8", order8),
    ];
    for (kid, x) in small_order {
        idp.publish_raw_jwk(
            json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64(x)}),
        );
    }
    let h = Harness::with(idp, |b| b, None).await;
    warm_up(&h).await;
    let before = jwks_hits(&h);

    // R = identity, S = 0 satisfies [S]B = R + [k]A for A = identity: a forgery for any message.
    let trivial = [&identity[..], &[0u8; 32]].concat();
    let forged_identity = forged(&h.idp, &header("EdDSA", "ed-identity"), &trivial);
    let (input, signature) = split_signature(&forged_identity);
    let naive = UnparsedPublicKey::new(&aws_sig::ED25519, identity);
    assert!(
        naive.verify(input.as_bytes(), &signature).is_ok(),
        "the forgery is real: only refusing the key at load stops it"
    );
    for (kid, _) in small_order {
        assert_rejected(&h, &forged(&h.idp, &header("EdDSA", kid), &trivial), &[kid]).await;
    }

    let valid = valid_token(&h);
    let (_, sig) = split_signature(&valid);
    let (r, s) = sig.split_at(32);
    let little = |bytes: &[u8]| bytes.iter().rev().copied().collect::<Vec<u8>>();
    let s_plus_l = little(&big_add_sub(&little(s), &hex(ED25519_L), false));
    let mut s_high_bits = s.to_vec();
    s_high_bits[31] |= 0xe0;
    let mut r_flipped = r.to_vec();
    r_flipped[0] ^= 0x01;
    for signature in [
        [r, &s_plus_l].concat(),
        [r, &s_high_bits].concat(),
        [&r_flipped, s].concat(),
        sig[..63].to_vec(),
        [&sig[..], &[0]].concat(),
        [r, &[0u8; 32]].concat(),
    ] {
        assert_rejected(&h, &with_signature(&valid, &signature), &[]).await;
    }
    assert_accepted(&h, &valid).await;

    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A21: JWKS keys for encryption (`use: enc`, `key_ops` without `verify`) and unparseable entries
/// are skipped; the other keys of the set still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a21_encryption_and_unparseable_jwks_entries_are_skipped_and_the_rest_still_work() {
    let idp = MockProvider::start().await.expect("provider");
    let kid = idp.current_kid();
    let real = published_jwk(&reqwest::Client::new(), &idp, &kid).await;
    let same_material = |new_kid: &str, edit: Value| {
        let mut jwk = real.clone();
        jwk["kid"] = json!(new_kid);
        for (name, value) in edit.as_object().expect("object") {
            jwk[name] = value.clone();
        }
        jwk
    };
    let not_for_signing = [
        ("use-enc", json!({"use": "enc"})),
        ("use-upper-sig", json!({"use": "SIG"})),
        ("use-number", json!({"use": 1})),
        ("ops-encrypt", json!({"key_ops": ["encrypt"]})),
        (
            "ops-wrap",
            json!({"key_ops": ["wrapKey", "encrypt", "sign"]}),
        ),
        ("ops-empty", json!({"key_ops": []})),
        ("ops-string", json!({"key_ops": "verify"})),
        (
            "sig-but-ops-encrypt",
            json!({"use": "sig", "key_ops": ["encrypt"]}),
        ),
    ];
    for (new_kid, edit) in &not_for_signing {
        idp.publish_raw_jwk(same_material(new_kid, edit.clone()));
    }
    idp.publish_raw_jwk(same_material(
        "ops-verify",
        json!({"key_ops": ["sign", "verify"]}),
    ));
    let junk = [
        json!(42),
        json!("junk"),
        json!(null),
        json!([]),
        json!({}),
        json!({"kty": "RSA", "kid": "broken-n", "n": "!!", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": kid, "n": "AQAB"}),
        json!({"kty": "RSA", "kid": 7, "n": real["n"], "e": real["e"]}),
        json!({"kty": "RSA", "kid": "huge-n", "n": "A".repeat(100_000), "e": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": b64([1u8; 32]), "y": b64([2u8; 32])}),
        json!({"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": b64([1u8; 32]), "y": b64([2u8; 32])}),
        json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64([9u8; 32])}),
        json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")}),
        json!({"kty": "FOO", "kid": "foo"}),
        json!({"kid": "no-kty", "n": real["n"], "e": real["e"]}),
    ];
    for entry in junk {
        idp.publish_raw_jwk(entry);
    }
    let h = Harness::with(idp, |b| b, None).await;
    warm_up(&h).await;
    let before = jwks_hits(&h);

    // Each signature is valid for the key material published under these kids.
    for (new_kid, _) in &not_for_signing {
        let token = signed(&h.idp, &header("RS256", new_kid), &kid);
        assert_rejected(&h, &token, &[]).await;
    }
    let input = signing_input(
        header("HS256", "hmac").to_string().as_bytes(),
        claims(&h.idp).to_string().as_bytes(),
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, b"secret"),
        input.as_bytes(),
    );
    let hmac_token = format!("{input}.{}", b64(tag));
    let off_curve = forged(&h.idp, &header("ES256", "off-curve"), &[1u8; 64]);
    let broken = signed(&h.idp, &header("RS256", "broken-n"), &kid);
    for token in [hmac_token, off_curve, broken] {
        assert_rejected(&h, &token, &[]).await;
    }

    assert_accepted(&h, &valid_token(&h)).await;
    assert_accepted(&h, &signed(&h.idp, &header("RS256", "ops-verify"), &kid)).await;
    assert!(jwks_hits(&h) - before <= 1, "at most one refetch");
}

/// A22: a token with valid headers and the right kid but signed by a different key is refused
/// (OpenID conformance #1375), without a refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a22_right_kid_but_signed_by_another_key_is_refused() {
    let idp = MockProvider::start().await.expect("provider");
    let kid = idp.current_kid();
    let other = idp.add_key(SigningAlg::RS256);
    let ec = idp.add_key(SigningAlg::ES256);
    let other_ec = idp.add_key(SigningAlg::ES256);
    let unpublished = idp.add_key(SigningAlg::RS256);
    idp.retire_key(&unpublished);
    let attacker = MockProvider::start().await.expect("attacker");
    let h = Harness::with(idp, |b| b, None).await;
    warm_up(&h).await;
    let before = jwks_hits(&h);

    let payload = claims(&h.idp).to_string();
    let by = |signer: &MockProvider, head: Value, signing_kid: &str| {
        signer.sign_raw(head.to_string().as_bytes(), payload.as_bytes(), signing_kid)
    };
    let alice = valid_token(&h);
    let bob = h.idp.token().audience(AUDIENCE).sub("bob").sign();
    let (alice_input, _) = split_signature(&alice);
    let (_, bob_signature) = split_signature(&bob);
    let (bob_input, _) = split_signature(&bob);
    let admin_claims = b64(claims(&h.idp).to_string().replace("alice", "admin"));
    let bob_header = bob_input.split('.').next().expect("header");
    let tokens = [
        by(&h.idp, header("RS256", &kid), &other),
        by(&h.idp, header("RS256", &other), &kid),
        by(&h.idp, header("RS256", &kid), &unpublished),
        by(&attacker, header("RS256", &kid), &attacker.current_kid()),
        by(&h.idp, header("ES256", &ec), &other_ec),
        format!("{alice_input}.{}", b64(&bob_signature)),
        format!("{bob_header}.{admin_claims}.{}", b64(&bob_signature)),
    ];
    for token in &tokens {
        assert_rejected(&h, token, &[]).await;
    }

    assert_eq!(jwks_hits(&h) - before, 0, "a known kid never refetches");
}

/// Bounded everything: a JWKS with more keys than `jwks_max_keys` (64 by default) is read up
/// to the bound. The keys before it serve; a key past it is never loaded, so its tokens are
/// 401 `invalid_token` on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_past_the_jwks_key_bound_are_never_loaded() {
    let idp = MockProvider::start().await.expect("provider");
    for _ in 0..70 {
        idp.add_key(SigningAlg::ES256);
    }
    let late = idp.add_key(SigningAlg::RS256);
    let h = Harness::with(idp, |b| b, None).await;
    let first = h.idp.token().audience(AUDIENCE).sign();
    assert_eq!(h.bearer_both("/me", &first).await.status, 200);
    let past = h.idp.token().audience(AUDIENCE).kid(&late).sign();
    assert_invalid_token(&h.bearer_both("/me", &past).await);
}
