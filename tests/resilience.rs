//! Provider outages, slow and broken provider answers, key rotation and refetch limits
//! (SECURITY.md G2-G5, and the JWKS rules of DESIGN.md section 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_auth::testing::{Endpoint, Fault, MockProvider, SigningAlg};
use oidc_auth::{Clock, ManualClock, OidcAuth, SystemClock};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, assert_invalid_token, base_config,
};

fn unknown_kid(idp: &MockProvider, kid: &str) -> String {
    idp.token().audience(AUDIENCE).kid(kid).sign()
}

/// A harness on a manual clock (so cooldowns are exact) and its start time.
async fn manual(
    adjust: impl FnOnce(oidc_auth::OidcConfigBuilder) -> oidc_auth::OidcConfigBuilder,
) -> (Harness, ManualClock) {
    let clock = ManualClock::new(SystemClock.now());
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(idp, adjust, Some(clock.clone())).await;
    (h, clock)
}

/// A valid token for the harness's audience, issued at the manual clock's time.
fn issued_now(h: &Harness, clock: &ManualClock) -> String {
    h.idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign()
}

/// G2: with a warm JWKS, known kids keep validating while the provider is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_known_kids_validate_while_the_provider_is_down() {
    let h = Harness::start().await;
    let token = h.idp.token().audience(AUDIENCE).sign();
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
    h.idp.set_fault_all(Fault::Down);
    let another = h.idp.token().audience(AUDIENCE).sub("bob").sign();
    assert_eq!(h.bearer_both("/me", &another).await.status, 200);
}

/// G2: an unknown kid while the provider is down is 503 (the refresh failed), not 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_unknown_kid_while_down_is_503() {
    let h = Harness::start().await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    let kid = h.idp.add_key(SigningAlg::RS256);
    h.idp.set_fault(Endpoint::Jwks, Fault::Status(500));
    let reply = h.bearer_both("/me", &unknown_kid(&h.idp, &kid)).await;
    assert_eq!(reply.status, 503);
    assert!(reply.retry_after.is_some());
}

/// G2: an unknown kid that is absent after a successful refresh is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_unknown_kid_absent_after_refresh_is_401() {
    let h = Harness::start().await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    assert_invalid_token(
        &h.bearer_both("/me", &unknown_kid(&h.idp, "no-such-kid"))
            .await,
    );
}

/// G2: the last good keys are usable only up to the stale limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_stale_keys_stop_validating_after_the_stale_limit() {
    let (h, clock) = manual(|b| {
        b.jwks_stale_limit(Duration::from_secs(3600))
            .token_cache_capacity(0)
    })
    .await;
    assert_eq!(
        h.bearer_both("/me", &issued_now(&h, &clock)).await.status,
        200
    );
    h.idp.set_fault_all(Fault::Down);
    clock.advance(3000);
    assert_eq!(
        h.bearer_both("/me", &issued_now(&h, &clock)).await.status,
        200
    );
    clock.advance(700);
    let reply = h.bearer_both("/me", &issued_now(&h, &clock)).await;
    assert_eq!(reply.status, 503);
    assert!(!h.auth.is_ready());
}

/// G3: a cold start with the provider down is 503 with Retry-After, never 200, and not ready;
/// once the provider is back (and the backoff has passed) validation recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_cold_start_while_down_is_503_then_recovers() {
    let (h, clock) = manual(|b| b).await;
    h.idp.set_fault_all(Fault::Down);
    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign();
    for _ in 0..3 {
        let reply = h.bearer_both("/me", &token).await;
        assert_eq!(reply.status, 503);
        assert!(
            reply
                .retry_after
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|s| s >= 1)
        );
    }
    assert!(!h.auth.is_ready());
    h.idp.set_fault_all(Fault::None);
    clock.advance(120);
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
    assert!(h.auth.is_ready());
}

/// G3: while backing off, requests do not reach the provider at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_backoff_spares_the_provider() {
    let (h, clock) = manual(|b| b).await;
    h.idp.set_fault_all(Fault::Status(500));
    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign();
    for _ in 0..10 {
        assert_eq!(h.bearer_both("/me", &token).await.status, 503);
    }
    assert_eq!(
        h.idp.hits(Endpoint::Discovery) + h.idp.hits(Endpoint::Jwks),
        1
    );
}

/// G4: a JWKS that answers slowly does not delay requests with known kids, and a refresh that
/// hangs ends at the configured timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_slow_jwks_does_not_delay_known_kids() {
    let (h, clock) = manual(|b| {
        b.timeout(Duration::from_secs(2))
            .jwks_ttl(Duration::from_secs(60))
            .token_cache_capacity(0)
    })
    .await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    let fetches = h.idp.hits(Endpoint::Jwks);
    h.idp.set_fault(Endpoint::Jwks, Fault::Hang);
    // Past the TTL a background refresh starts and hangs; known kids must not wait for it.
    clock.advance(120);
    let first = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign();
    assert_eq!(h.bearer_both("/me", &first).await.status, 200);
    for _ in 0..200 {
        if h.idp.hits(Endpoint::Jwks) > fetches {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        h.idp.hits(Endpoint::Jwks) > fetches,
        "no refresh reached the provider"
    );
    let started = Instant::now();
    for _ in 0..5 {
        let t = h
            .idp
            .token()
            .audience(AUDIENCE)
            .issued_at(clock.now())
            .sign();
        assert_eq!(h.bearer_both("/me", &t).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "known kids waited {:?}",
        started.elapsed()
    );
    // An unknown kid waits for a fetch, which ends at the timeout with 503.
    clock.advance(60);
    let kid = h.idp.add_key(SigningAlg::ES256);
    let started = Instant::now();
    let reply = h
        .bearer(
            oidc_auth_tests::Framework::Axum,
            "/me",
            &unknown_kid(&h.idp, &kid),
        )
        .await;
    assert_eq!(reply.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "hung for {:?}",
        started.elapsed()
    );
}

/// G5: 1 000 concurrent validations carrying one new kid cause exactly one JWKS fetch, and all
/// succeed once it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_concurrent_requests_with_a_new_kid_fetch_once() {
    let h = Harness::start().await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    let before = h.idp.hits(Endpoint::Jwks);
    h.idp.rotate_key(SigningAlg::ES256);
    h.idp
        .set_fault(Endpoint::Jwks, Fault::Slow(Duration::from_millis(200)));
    let token = Arc::new(h.idp.token().audience(AUDIENCE).sign());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let auth = h.auth.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(
            async move { auth.validate(&token).await.is_ok() },
        ));
    }
    for task in tasks {
        assert!(task.await.unwrap_or(false));
    }
    assert_eq!(h.idp.hits(Endpoint::Jwks) - before, 1);
}

/// G5 over HTTP: concurrent requests through both frameworks share one fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_concurrent_http_requests_with_a_new_kid_fetch_once() {
    let h = Arc::new(Harness::start().await);
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    let before = h.idp.hits(Endpoint::Jwks);
    h.idp.rotate_key(SigningAlg::EdDSA);
    h.idp
        .set_fault(Endpoint::Jwks, Fault::Slow(Duration::from_millis(200)));
    let token = Arc::new(h.idp.token().audience(AUDIENCE).sign());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (h, token) = (h.clone(), token.clone());
        let fw = oidc_auth_tests::FRAMEWORKS[i % 2];
        tasks.push(tokio::spawn(async move {
            h.bearer(fw, "/me", &token).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap_or(0), 200);
    }
    assert_eq!(h.idp.hits(Endpoint::Jwks) - before, 1);
}

/// A7/A8: unknown kids refetch at most once per cooldown; after the cooldown, once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_at_most_once_per_cooldown() {
    let (h, clock) = manual(|b| b.jwks_refetch_cooldown(Duration::from_secs(15))).await;
    let valid = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign();
    assert_eq!(h.bearer_both("/me", &valid).await.status, 200);
    let before = h.idp.hits(Endpoint::Jwks);
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let auth = h.auth.clone();
        let token = h
            .idp
            .token()
            .audience(AUDIENCE)
            .kid(&format!("unknown-{i}"))
            .sign();
        tasks.push(tokio::spawn(async move {
            auth.validate(&token).await.map_err(|e| e.status())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.ok().and_then(Result::err), Some(401));
    }
    assert_eq!(h.idp.hits(Endpoint::Jwks) - before, 1, "one refetch");
    clock.advance(16);
    assert_invalid_token(
        &h.bearer_both("/me", &unknown_kid(&h.idp, "after-cooldown"))
            .await,
    );
    assert_eq!(
        h.idp.hits(Endpoint::Jwks) - before,
        2,
        "one more after the cooldown"
    );
}

/// Key rotation at the provider is picked up through the unknown-kid refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_provider_keys_are_picked_up() {
    let (h, clock) = manual(|b| b).await;
    assert_eq!(
        h.bearer_both(
            "/me",
            &h.idp
                .token()
                .audience(AUDIENCE)
                .issued_at(clock.now())
                .sign()
        )
        .await
        .status,
        200
    );
    clock.advance(20);
    h.idp.rotate_key(SigningAlg::ES256);
    let rotated = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(clock.now())
        .sign();
    assert_eq!(h.bearer_both("/me", &rotated).await.status, 200);
}

/// A provider that reuses a kid for a new key. A signature the keys with its kid refuse is 401
/// at once and fetches nothing (SECURITY.md: no outbound request for a forged token, A22), so
/// the new key's tokens are refused until the scheduled refresh (the JWKS TTL) brings the new
/// key; from then on they validate, and the replaced key's tokens stop, the cached one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kid_reused_for_a_new_key_is_picked_up_at_the_scheduled_refresh() {
    for framework in FRAMEWORKS {
        let (h, clock) = manual(|b| b.jwks_ttl(Duration::from_secs(600))).await;
        let old = issued_now(&h, &clock);
        assert_eq!(h.bearer(framework, "/me", &old).await.status, 200);
        let kid = h.idp.current_kid();
        assert_eq!(h.idp.replace_key_keeping_kid(SigningAlg::RS256), kid);
        let fetches = h.idp.hits(Endpoint::Jwks);
        clock.advance(300);
        let new = issued_now(&h, &clock);
        for _ in 0..20 {
            assert_invalid_token(&h.bearer(framework, "/me", &new).await);
        }
        assert_eq!(
            h.idp.hits(Endpoint::Jwks),
            fetches,
            "a refused signature fetched"
        );
        clock.advance(301);
        let mut picked_up = false;
        for _ in 0..100 {
            if h.bearer(framework, "/me", &new).await.status == 200 {
                picked_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(picked_up, "{framework:?}: the new key was not picked up");
        assert_eq!(h.idp.hits(Endpoint::Jwks), fetches + 1, "{framework:?}");
        assert_invalid_token(&h.bearer(framework, "/me", &old).await);
    }
}

/// A key the provider withdraws stops validating as soon as a refresh finds it gone, also for
/// a token the validated-token cache already holds: the cache does not keep a withdrawn key's
/// tokens alive until their cache TTL. Keys that stay keep validating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_ends_its_cached_tokens() {
    for framework in FRAMEWORKS {
        let (h, clock) = manual(|b| b).await;
        let withdrawn = h.idp.current_kid();
        let old = h
            .idp
            .token()
            .audience(AUDIENCE)
            .issued_at(clock.now())
            .sign();
        assert_eq!(h.bearer(framework, "/me", &old).await.status, 200);
        assert_eq!(
            h.bearer(framework, "/me", &old).await.status,
            200,
            "a cache hit"
        );
        let kept = h.idp.add_key(SigningAlg::RS256);
        let kept_token = h.idp.token().audience(AUDIENCE).kid(&kept).sign();
        clock.advance(20);
        h.idp.rotate_key(SigningAlg::ES256);
        h.idp.retire_key(&withdrawn);
        let new = h
            .idp
            .token()
            .audience(AUDIENCE)
            .issued_at(clock.now())
            .sign();
        let fetches = h.idp.hits(Endpoint::Jwks);
        // The new kid makes the server fetch the key set, which no longer has the old key.
        assert_eq!(h.bearer(framework, "/me", &new).await.status, 200);
        assert_eq!(h.idp.hits(Endpoint::Jwks), fetches + 1);
        assert_invalid_token(&h.bearer(framework, "/me", &old).await);
        assert_eq!(
            h.idp.hits(Endpoint::Jwks),
            fetches + 1,
            "within the cooldown"
        );
        assert_eq!(h.bearer(framework, "/me", &kept_token).await.status, 200);
        assert_eq!(h.bearer(framework, "/me", &new).await.status, 200);
    }
}

/// Garbage, truncated, oversized and error answers from the provider are 503, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_provider_answers_are_503() {
    for fault in [
        Fault::Garbage,
        Fault::Truncated,
        Fault::Status(500),
        Fault::Status(404),
        Fault::Status(302),
    ] {
        let idp = MockProvider::start().await.expect("provider");
        idp.set_fault(Endpoint::Jwks, fault.clone());
        let h = Harness::with(idp, |b| b, None).await;
        let reply = h
            .bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await;
        assert_eq!(reply.status, 503, "{fault:?}");
    }
}

/// A JWKS larger than the limit is refused (503) instead of being read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jwks_is_refused() {
    let idp = MockProvider::start().await.expect("provider");
    for i in 0..40 {
        idp.publish_raw_jwk(
            serde_json::json!({"kty": "oct", "kid": format!("pad-{i}"), "k": "A".repeat(1000)}),
        );
    }
    let h = Harness::with(idp, |b| b.jwks_max_bytes(16 * 1024), None).await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        503
    );
}

/// D10: a discovery document naming another issuer is never adopted: validation answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_another_issuer_is_refused() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_discovery_issuer(Some("https://evil.example".into()));
    let h = Harness::with(idp, |b| b, None).await;
    let reply = h
        .bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
        .await;
    assert_eq!(reply.status, 503);
    assert_eq!(h.idp.hits(Endpoint::Jwks), 0);
}

/// A discovery document (itself fetched from loopback here) that names a plain-http endpoint
/// on another host is not used: keys fetched from such a `jwks_uri` could be replaced on the
/// way, and a client secret sent to such a `token_endpoint` read. Validation answers 503 and
/// nothing is fetched from it; with `allow_insecure_http` the same document is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_naming_a_plain_http_endpoint_elsewhere_is_refused() {
    for endpoint in ["jwks_uri", "token_endpoint"] {
        let idp = MockProvider::start().await.expect("provider");
        let name = endpoint.to_owned();
        // The mock's own JWKS through an address that is not a loopback one by its spelling
        // (an IPv4-mapped IPv6 address), so that keys fetched from it would verify.
        let elsewhere = idp.jwks_uri().replace("127.0.0.1", "[::ffff:127.0.0.1]");
        idp.set_discovery_tweak(Some(std::sync::Arc::new(
            move |doc: &mut serde_json::Map<String, serde_json::Value>| {
                doc.insert(name.clone(), elsewhere.clone().into());
            },
        )));
        let h = Harness::with(idp, |b| b, None).await;
        let reply = h
            .bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await;
        assert_eq!(reply.status, 503, "{endpoint}: {}", reply.raw_body);
        assert_eq!(h.idp.hits(Endpoint::Jwks), 0, "{endpoint}");
    }
    let idp = MockProvider::start().await.expect("provider");
    let jwks = idp.jwks_uri();
    idp.set_discovery_tweak(Some(std::sync::Arc::new(
        move |doc: &mut serde_json::Map<String, serde_json::Value>| {
            doc.insert("token_endpoint".into(), "http://idp.internal/token".into());
            doc.insert("jwks_uri".into(), jwks.clone().into());
        },
    )));
    let h = Harness::with(idp, |b| b.allow_insecure_http(true), None).await;
    let reply = h
        .bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
        .await;
    assert_eq!(reply.status, 200, "allowed: {}", reply.raw_body);
    // An advertised `jwks_uri` that a configured one replaces is never fetched, so it does
    // not make the document unusable.
    let idp = MockProvider::start().await.expect("provider");
    let jwks = idp.jwks_uri();
    idp.set_discovery_tweak(Some(std::sync::Arc::new(
        |doc: &mut serde_json::Map<String, serde_json::Value>| {
            doc.insert("jwks_uri".into(), "http://idp.internal/jwks".into());
        },
    )));
    let h = Harness::with(idp, |b| b.jwks_uri(jwks), None).await;
    let login = h
        .get(
            Framework::Axum,
            "/api/auth/v2/login?redirect_uri=http://127.0.0.1:53100/cb",
            None,
        )
        .await;
    assert_eq!(
        login.status, 302,
        "login with a replaced jwks_uri: {}",
        login.raw_body
    );
}

/// A discovery document whose `jwks_uri` is missing or not a URL (OAuth metadata, RFC 8414,
/// makes it optional) still serves for what it names: with a configured `jwks_uri` tokens
/// validate and login works; without one, validation is 503 and nothing is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_without_a_usable_jwks_uri_needs_a_configured_one() {
    for advertised in [
        None,
        Some(serde_json::json!("/jwks")),
        Some(serde_json::json!(7)),
    ] {
        let make = || async {
            let idp = MockProvider::start().await.expect("provider");
            let advertised = advertised.clone();
            idp.set_discovery_tweak(Some(std::sync::Arc::new(
                move |doc: &mut serde_json::Map<String, serde_json::Value>| match &advertised {
                    None => {
                        doc.remove("jwks_uri");
                    }
                    Some(value) => {
                        doc.insert("jwks_uri".into(), value.clone());
                    }
                },
            )));
            idp
        };
        let idp = make().await;
        let jwks = idp.jwks_uri();
        let h = Harness::with(idp, |b| b.jwks_uri(jwks), None).await;
        let token = h.idp.token().audience(AUDIENCE).sign();
        let reply = h.bearer_both("/me", &token).await;
        assert_eq!(reply.status, 200, "{advertised:?}: {}", reply.raw_body);
        let login = h
            .get(
                Framework::Axum,
                "/api/auth/v2/login?redirect_uri=http://127.0.0.1:53100/cb",
                None,
            )
            .await;
        assert_eq!(login.status, 302, "{advertised:?}: {}", login.raw_body);

        let h = Harness::with(make().await, |b| b, None).await;
        let token = h.idp.token().audience(AUDIENCE).sign();
        let reply = h.bearer_both("/me", &token).await;
        assert_eq!(reply.status, 503, "{advertised:?}: {}", reply.raw_body);
        assert_eq!(h.idp.hits(Endpoint::Jwks), 0, "{advertised:?}");
    }
}

/// G4 with a discovery URL that implies no issuer (it has a query), so the issuer is
/// configured: once the document is past its TTL and the provider hangs, known kids still
/// validate without waiting for the refresh, against the configured issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_a_stale_discovery_document_does_not_delay_validation() {
    let clock = ManualClock::new(SystemClock.now());
    let idp = MockProvider::start().await.expect("provider");
    let url = format!("{}?tenant=main", idp.discovery_url());
    let issuer = idp.issuer();
    let h = Harness::with(
        idp,
        |b| {
            b.discovery_url(url)
                .issuer(issuer)
                .timeout(Duration::from_secs(2))
                .token_cache_capacity(0)
        },
        Some(clock.clone()),
    )
    .await;
    let token = |h: &Harness| h.idp.token().audience(AUDIENCE).issued_at(clock.now());
    assert_eq!(h.bearer_both("/me", &token(&h).sign()).await.status, 200);
    h.idp.set_fault(Endpoint::Discovery, Fault::Hang);
    clock.advance(2 * 3600);
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(h.bearer_both("/me", &token(&h).sign()).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "known kids waited {:?}",
        started.elapsed()
    );
    let foreign = token(&h)
        .claim("iss", "https://other.example".into())
        .sign();
    assert_invalid_token(&h.bearer_both("/me", &foreign).await);
}

/// A key-set fetch needed while the discovery document is past its TTL and the provider hangs
/// ends within one provider timeout, not one for discovery and another for the JWKS: the cached
/// document's `jwks_uri` is used at once and the document is refreshed in the background. Once
/// the provider is back, that refresh does happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_fetch_with_a_stale_discovery_document_waits_one_timeout() {
    let (h, clock) = manual(|b| b.timeout(Duration::from_secs(1)).token_cache_capacity(0)).await;
    assert_eq!(
        h.bearer_both("/me", &issued_now(&h, &clock)).await.status,
        200
    );
    // Past the discovery TTL (1 h) and the key set's stale limit (24 h): keys must be fetched.
    h.idp.set_fault_all(Fault::Hang);
    clock.advance(25 * 3600);
    let started = Instant::now();
    let reply = h
        .bearer(
            oidc_auth_tests::Framework::Axum,
            "/me",
            &issued_now(&h, &clock),
        )
        .await;
    assert_eq!(reply.status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "the 503 took {:?}",
        started.elapsed()
    );

    // The provider recovers; past the backoff, a key fetch (for a new kid) that finds the
    // discovery gate free starts the refresh of the document.
    h.idp.set_fault_all(Fault::None);
    // A minute later, a token signed with a key added just now: its validation fetches keys.
    let with_a_new_key = || async {
        clock.advance(60);
        let kid = h.idp.add_key(SigningAlg::ES256);
        let fresh = h
            .idp
            .token()
            .audience(AUDIENCE)
            .kid(&kid)
            .issued_at(clock.now())
            .sign();
        h.bearer_both("/me", &fresh).await.status
    };
    let recovered = h.idp.hits(Endpoint::Discovery);
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.idp.hits(Endpoint::Discovery) == recovered {
        assert!(
            Instant::now() < deadline,
            "the discovery document was not refreshed"
        );
        assert_eq!(with_a_new_key().await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Now fresh, the document is not fetched for the next key fetch.
    let refreshed = h.idp.hits(Endpoint::Discovery);
    assert_eq!(with_a_new_key().await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.idp.hits(Endpoint::Discovery), refreshed);
}

/// A login while the discovery document is past its TTL and the provider hangs is sent to the
/// cached document's authorization endpoint at once, instead of waiting one provider timeout
/// for the refresh, which runs in the background. Once the provider is back, it happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_a_stale_discovery_document_does_not_wait_for_its_refresh() {
    let (h, clock) = manual(|b| b.timeout(Duration::from_secs(2))).await;
    let login = format!(
        "/api/auth/v2/login?{}",
        serde_urlencoded::to_string([("redirect_uri", LOOPBACK)]).unwrap_or_default()
    );
    for fw in FRAMEWORKS {
        assert_eq!(h.get(fw, &login, None).await.status, 302, "{fw:?}");
    }
    let fetched = h.idp.hits(Endpoint::Discovery);
    h.idp.set_fault_all(Fault::Hang);
    clock.advance(2 * 3600);
    for fw in FRAMEWORKS {
        let started = Instant::now();
        let reply = h.get(fw, &login, None).await;
        assert_eq!(reply.status, 302, "{fw:?}: {}", reply.raw_body);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{fw:?}: the redirect took {:?}",
            started.elapsed()
        );
    }

    h.idp.set_fault_all(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.idp.hits(Endpoint::Discovery) <= fetched + 1 {
        assert!(
            Instant::now() < deadline,
            "the discovery document was not refreshed"
        );
        // Past the backoff of the refresh that hung.
        clock.advance(60);
        assert_eq!(h.get(FRAMEWORKS[0], &login, None).await.status, 302);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `issuer` and `jwks_uri` configured, discovery is never fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_and_jwks_uri_skip_discovery() {
    let idp = MockProvider::start().await.expect("provider");
    let config = base_config(&idp)
        .issuer(idp.issuer())
        .jwks_uri(idp.jwks_uri())
        .build()
        .expect("config");
    let h = Harness::serve(idp, OidcAuth::new(config), None).await;
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    assert_eq!(h.idp.hits(Endpoint::Discovery), 0);
}

/// `warm_up` loads the keys, so the first request makes no provider call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_loads_keys_before_the_first_request() {
    let h = Harness::start().await;
    assert!(!h.auth.is_ready());
    h.auth.warm_up().await.expect("warm up");
    assert!(h.auth.is_ready());
    let hits = h.idp.hits(Endpoint::Jwks);
    assert_eq!(
        h.bearer_both("/me", &h.idp.token().audience(AUDIENCE).sign())
            .await
            .status,
        200
    );
    assert_eq!(h.idp.hits(Endpoint::Jwks), hits);
}
