//! Variants of SECURITY.md group A (JOSE parsing and crypto) for tokens naming this server
//! (broker mode) and trusted peers as their issuer, beyond the cases listed there, on both
//! frameworks: forged algorithms (`none`, HS256 keyed with the published RSA key) are refused
//! before any key is looked up, and floods of unknown `kid`s read the store or fetch the peer's
//! keys at most once per cooldown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::hmac;
use oidc_auth::store::memory::MemoryStore;
use oidc_auth::store::{Store, StoreFuture};
use oidc_auth::testing::{Endpoint, MockProvider};
use oidc_auth::{Clock, ManualClock, OidcAuth, OidcConfigBuilder, SystemClock};
use oidc_auth_tests::broker::{BROKER_AUDIENCE, JWKS, field, jwt, login, provider, serve_broker};
use oidc_auth_tests::jose::{b64, pem, published_jwk, rsa_public_der};
use oidc_auth_tests::{FRAMEWORKS, Harness, assert_invalid_token, base_config};
use serde_json::{Value, json};

/// A [`MemoryStore`] that counts the reads of signing keys (`list_keys`) and of stored copies
/// of peers' keys (`get_peer_jwks`).
struct CountingStore {
    inner: MemoryStore,
    key_reads: AtomicUsize,
    peer_reads: AtomicUsize,
}

impl CountingStore {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            key_reads: AtomicUsize::new(0),
            peer_reads: AtomicUsize::new(0),
        }
    }

    fn key_reads(&self) -> usize {
        self.key_reads.load(Ordering::SeqCst)
    }

    fn peer_reads(&self) -> usize {
        self.peer_reads.load(Ordering::SeqCst)
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> StoreFuture<'_, $out> {
            self.inner.$name($($arg),*)
        })*
    };
}

impl Store for CountingStore {
    delegate! {
        migrate() -> ();
        put_session(session: &oidc_auth::store::Session) -> ();
        update_session(session: &oidc_auth::store::Session, now: i64) -> bool;
        get_session(id: &str, now: i64) -> Option<oidc_auth::store::Session>;
        delete_session(id: &str) -> Option<oidc_auth::store::Session>;
        insert_refresh(record: &oidc_auth::store::RefreshRecord) -> ();
        rotate_refresh(old: &[u8; 32], new: &[u8; 32], now: i64) -> oidc_auth::store::RotateOutcome;
        revoke_family(family: &str) -> ();
        insert_first_key(key: &oidc_auth::store::StoredKey, now: i64) -> bool;
        insert_key(key: &oidc_auth::store::StoredKey) -> ();
        delete_key(kid: &str) -> ();
        put_peer_jwks(issuer: &str, jwks: &str, fetched_at: i64) -> ();
        consume_once(key: &[u8; 32], expires_at: i64, now: i64) -> bool;
        is_consumed(key: &[u8; 32], now: i64) -> bool;
        purge_expired(now: i64) -> u64;
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<oidc_auth::store::StoredKey>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.list_keys()
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        self.peer_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_peer_jwks(issuer)
    }
}

/// The audience federating instances share.
const FEDERATION_AUDIENCE: &str = "federation";

/// A broker (audience [`FEDERATION_AUDIENCE`], issuer `https://b.invalid`) trusting `peer`, a
/// mock provider whose key set is at `<issuer>/jwks`, on `store`, served by both frameworks.
async fn trusting(
    peer: &MockProvider,
    store: Arc<CountingStore>,
    clock: Option<ManualClock>,
) -> Harness {
    let idp = MockProvider::start().await.expect("provider");
    let config: OidcConfigBuilder = base_config(&idp)
        .client_id("test-client")
        .broker_mode(true)
        .broker_audience(FEDERATION_AUDIENCE)
        .proxy("https://b.invalid")
        .trusted_issuers([peer.issuer()])
        .broker_jwks_path("/jwks")
        .exchange_client("svc", "svc-secret");
    let mut builder = OidcAuth::builder(config.build().expect("config")).store(store);
    if let Some(clock) = &clock {
        builder = builder.clock(clock.clone());
    }
    Harness::serve(idp, builder.build(), clock).await
}

/// A compact JWS of `header` and `claims` with signature bytes `signature`.
fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(signature)
    )
}

/// `claims` under `alg: none` (and its case variants) with the key id `kid`, each with an
/// empty signature: `header.payload.`.
fn unsigned(kid: &str, claims: &Value) -> Vec<String> {
    ["none", "None", "NONE"]
        .into_iter()
        .map(|alg| {
            compact(
                &json!({"alg": alg, "typ": "at+jwt", "kid": kid}),
                claims,
                &[],
            )
        })
        .collect()
}

/// `claims` signed HS256 under the key id `kid` with each form of the RSA public key `jwk`
/// (and of the whole key set `jwks`, as published) as the HMAC secret: the modulus `n` as
/// published (base64url) and decoded, the JWK and the key set as JSON, the PKCS#1 and SPKI
/// DER and PEM encodings.
fn hmac_keyed_with_public_key(kid: &str, jwk: &Value, jwks: &str, claims: &Value) -> Vec<String> {
    let n = jwk["n"].as_str().expect("an RSA key").to_owned();
    let (pkcs1, spki) = rsa_public_der(jwk);
    let secrets: Vec<Vec<u8>> = vec![
        n.clone().into_bytes(),
        oidc_auth_tests::jose::unb64(&n),
        jwk.to_string().into_bytes(),
        jwks.as_bytes().to_vec(),
        pkcs1.clone(),
        spki.clone(),
        pem("RSA PUBLIC KEY", &pkcs1).into_bytes(),
        pem("PUBLIC KEY", &spki).into_bytes(),
    ];
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    secrets
        .iter()
        .map(|secret| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            let tag = hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", b64(tag.as_ref()))
        })
        .collect()
}

/// A1/A2 on the broker path: tokens naming this server as their issuer (`iss` and `aud` of a
/// token it minted, the kid of its signing key) under `alg: none`/`None`/`NONE` with an empty
/// signature, or signed HS256 with its published RSA key (`n`, the JWK, the JWKS, DER, PEM)
/// as the HMAC secret, are 401 `invalid_token` on both frameworks, and the store's signing
/// keys are not read for any of them (`list_keys` is not called).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_algorithms_naming_this_server_are_refused_without_reading_its_keys() {
    let store = Arc::new(CountingStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let minted = field(&login(&h, fw).await, "access_token").to_owned();
        let (header, claims) = jwt(&minted);
        assert_eq!(claims["iss"], BROKER_AUDIENCE);
        let kid = header["kid"].as_str().expect("a kid").to_owned();
        let published = h.get(fw, JWKS, None).await;
        assert_eq!(published.status, 200, "{fw:?}");
        let jwk = published.body["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .cloned()
            .expect("the signing key is published");
        // Control: the genuine token is accepted.
        assert_eq!(h.bearer(fw, "/me", &minted).await.status, 200, "{fw:?}");
        let before = store.key_reads();
        let mut forged = unsigned(&kid, &claims);
        forged.extend(hmac_keyed_with_public_key(
            &kid,
            &jwk,
            &published.raw_body,
            &claims,
        ));
        for token in &forged {
            for fw in FRAMEWORKS {
                let reply = h.bearer(fw, "/me", token).await;
                assert_invalid_token(&reply);
            }
        }
        assert_eq!(
            store.key_reads(),
            before,
            "{fw:?}: the store's keys were read for a forged algorithm"
        );
    }
}

/// A1/A2 for a trusted peer: the same forgeries (`alg: none` variants with an empty signature,
/// HS256 keyed with the peer's published RSA key in each encoding) with the peer's `iss`, the
/// federation audience and the peer's real kid are 401 `invalid_token` on both frameworks, and
/// the peer is asked for nothing for them (no JWKS or discovery request), nor the store for a
/// copy of its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_algorithms_naming_a_trusted_peer_fetch_nothing_from_it() {
    let peer = MockProvider::start().await.expect("peer");
    let store = Arc::new(CountingStore::new());
    let h = trusting(&peer, store.clone(), None).await;
    let kid = peer.current_kid();
    let jwk = published_jwk(h.client(), &peer, &kid).await;
    let jwks = h
        .client()
        .get(peer.jwks_uri())
        .send()
        .await
        .expect("JWKS reachable")
        .text()
        .await
        .expect("JWKS text");
    let genuine = peer.token().audience(FEDERATION_AUDIENCE).sign();
    let (_, claims) = jwt(&genuine);
    assert_eq!(claims["iss"], peer.issuer().as_str());
    let mut forged = unsigned(&kid, &claims);
    forged.extend(hmac_keyed_with_public_key(&kid, &jwk, &jwks, &claims));
    let peer_hits = || peer.hits(Endpoint::Jwks) + peer.hits(Endpoint::Discovery);
    let before = peer_hits();
    for token in &forged {
        for fw in FRAMEWORKS {
            assert_invalid_token(&h.bearer(fw, "/me", token).await);
        }
    }
    assert_eq!(peer_hits(), before, "the peer was asked for its keys");
    assert_eq!(
        store.peer_reads(),
        0,
        "the store was asked for the peer's keys"
    );
    // Control: the genuine token of the peer is accepted, which takes a fetch.
    for fw in FRAMEWORKS {
        assert_eq!(h.bearer(fw, "/me", &genuine).await.status, 200, "{fw:?}");
    }
    assert!(peer_hits() > before, "the genuine token fetched the keys");
}

/// How many tokens with distinct unknown kids each flood sends per framework.
const FLOOD: usize = 50;

/// A7/A8 on this server's own issuer with a healthy store: 50 tokens per framework, each with
/// a kid of its own that no key has, `iss` and `aud` of this server and valid claims, signed
/// with a key of the test's own (a provider nobody trusts), are all 401 `invalid_token`, and
/// together read the store's signing keys (`list_keys`) exactly once: the first unknown kid
/// forces a reload, and the 15 s cooldown (the clock stands still here) answers the rest from
/// that read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_naming_this_server_read_its_keys_once_per_cooldown() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(CountingStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, Some(clock.clone())).await;
    let minted = field(&login(&h, FRAMEWORKS[0]).await, "access_token").to_owned();
    assert_eq!(h.bearer_both("/me", &minted).await.status, 200);
    let own = MockProvider::start().await.expect("the test's own signer");
    let before = store.key_reads();
    for fw in FRAMEWORKS {
        for i in 0..FLOOD {
            let token = own
                .token()
                .claim("iss", json!(BROKER_AUDIENCE))
                .audience(BROKER_AUDIENCE)
                .header("typ", json!("at+jwt"))
                .issued_at(clock.now())
                .kid(&format!("unknown-{fw:?}-{i}"))
                .sign();
            assert_invalid_token(&h.bearer(fw, "/me", &token).await);
        }
    }
    assert_eq!(
        store.key_reads() - before,
        1,
        "reads of the signing keys for {} unknown kids",
        2 * FLOOD
    );
    // The genuine token still validates from memory.
    assert_eq!(h.bearer_both("/me", &minted).await.status, 200);
}

/// A7/A8 for a trusted peer: once the peer's keys are in memory (and older than the 15 s
/// refetch cooldown), 50 tokens per framework with the peer's `iss`, the federation audience
/// and each a distinct kid the peer does not publish, signed with a key of the test's own, are
/// all 401 `invalid_token`, and together cause exactly one fetch of the peer's JWKS (the clock
/// stands still, so all of them fall within its cooldown); its genuine tokens keep validating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_naming_a_trusted_peer_fetch_its_keys_once_per_cooldown() {
    let clock = ManualClock::new(SystemClock.now());
    let peer = MockProvider::start().await.expect("peer");
    let store = Arc::new(CountingStore::new());
    let h = trusting(&peer, store.clone(), Some(clock.clone())).await;
    let genuine = peer
        .token()
        .audience(FEDERATION_AUDIENCE)
        .issued_at(clock.now())
        .sign();
    assert_eq!(h.bearer_both("/me", &genuine).await.status, 200);
    // Past the cooldown of the first fetch, well within the keys' time to live.
    clock.advance(16);
    let own = MockProvider::start().await.expect("the test's own signer");
    let before = peer.hits(Endpoint::Jwks);
    for fw in FRAMEWORKS {
        for i in 0..FLOOD {
            let token = own
                .token()
                .claim("iss", json!(peer.issuer()))
                .audience(FEDERATION_AUDIENCE)
                .issued_at(clock.now())
                .kid(&format!("unknown-{fw:?}-{i}"))
                .sign();
            assert_invalid_token(&h.bearer(fw, "/me", &token).await);
        }
    }
    assert_eq!(
        peer.hits(Endpoint::Jwks) - before,
        1,
        "fetches of the peer's keys for {} unknown kids",
        2 * FLOOD
    );
    assert_eq!(
        peer.hits(Endpoint::Discovery),
        0,
        "no discovery at the peer"
    );
    assert_eq!(h.bearer_both("/me", &genuine).await.status, 200);
}
