//! DESIGN.md section 4, rule by rule, against both frameworks and the mock provider.

use std::time::Duration;

use oidc_auth::testing::{Endpoint, Fault, MockProvider};
use oidc_auth::{ClaimConstraint, ManualClock};
use oidc_auth_tests::{AUDIENCE, FRAMEWORKS, Framework, Harness, assert_invalid_token};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn admin_token(h: &Harness) -> String {
    h.idp
        .token()
        .audience(AUDIENCE)
        .scope("openid admin")
        .claim("groups", json!(["admins", "users"]))
        .sign()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_reaches_the_handler() {
    let h = Harness::start().await;
    let token = h.idp.token().audience(AUDIENCE).sub("bob").sign();
    let reply = h.bearer_both("/me", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"sub": "bob"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scheme_is_case_insensitive() {
    let h = Harness::start().await;
    let token = h.idp.token().audience(AUDIENCE).sign();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        for fw in FRAMEWORKS {
            let reply = h.get(fw, "/me", Some(&format!("{scheme} {token}"))).await;
            assert_eq!(reply.status, 200, "{scheme} on {fw:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_gets_a_bare_bearer_challenge() {
    let h = Harness::start().await;
    for fw in FRAMEWORKS {
        for header in [None, Some("Basic dXNlcjpwYXNz"), Some("Digest x")] {
            let reply = h.get(fw, "/me", header).await;
            assert_eq!(reply.status, 401, "{header:?} on {fw:?}");
            assert_eq!(reply.challenge.as_deref(), Some("Bearer"));
        }
    }
    assert_eq!(h.idp.hits(Endpoint::Jwks), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_header_is_an_invalid_request() {
    let h = Harness::start().await;
    for fw in FRAMEWORKS {
        for header in ["Bearer a b", "Bearer a,b", "Bearer a\tb"] {
            let reply = h.get(fw, "/me", Some(header)).await;
            assert_eq!(reply.status, 400, "{header:?} on {fw:?}");
            assert_eq!(reply.error(), Some("invalid_request"));
            let challenge = reply.challenge.as_deref().unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_request\""),
                "RFC 6750 section 3: {challenge:?} on {fw:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorization_headers_are_an_invalid_request() {
    let h = Harness::start().await;
    let token = h.idp.token().audience(AUDIENCE).sign();
    for fw in FRAMEWORKS {
        let reply = h
            .client()
            .get(h.url(fw, "/me"))
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(reply.ok(), Some(400), "{fw:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_the_json_body_and_never_echoes_the_token() {
    let h = Harness::start().await;
    let expired = h.idp.token().audience(AUDIENCE).expires_in(-3600).sign();
    let reply = h.bearer_both("/me", &expired).await;
    assert_invalid_token(&reply);
    for field in ["detail", "error", "error_description"] {
        assert!(
            reply.body.get(field).and_then(|v| v.as_str()).is_some(),
            "{field} missing: {}",
            reply.raw_body
        );
    }
    assert!(!reply.raw_body.contains(&expired));
    let payload = expired.split('.').nth(1).unwrap_or_default();
    assert!(!reply.raw_body.contains(payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_issuer_is_refused_without_fetching_keys() {
    let h = Harness::start().await;
    let foreign = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("iss", json!("https://evil.example"))
        .sign();
    assert_invalid_token(&h.bearer_both("/me", &foreign).await);
    assert_eq!(h.idp.hits(Endpoint::Jwks), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_is_checked_when_configured() {
    let h = Harness::start().await;
    let other = h.idp.token().audience("another-api").sign();
    assert_invalid_token(&h.bearer_both("/me", &other).await);
    let none = h.idp.token().sign();
    assert_invalid_token(&h.bearer_both("/me", &none).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_audience_any_audience_is_accepted() {
    let idp = MockProvider::start().await.expect("provider");
    let config = oidc_auth::OidcConfig::builder()
        .discovery_url(idp.discovery_url())
        .client_id("c")
        .build()
        .expect("config");
    let auth = oidc_auth::OidcAuth::new(config);
    let h = Harness::serve(idp, auth, None).await;
    let token = h.idp.token().audience("whatever").sign();
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let h = Harness::start().await;
    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .scope("openid")
        .claim("groups", json!(["admins"]))
        .sign();
    let reply = h.bearer_both("/admin", &token).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error(), Some("insufficient_scope"));
    let challenge = reply.challenge.unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_must_match_a_whole_word() {
    let h = Harness::start().await;
    for scope in ["administrator", "admins", "Admin", "read\tadmin", "xadmin"] {
        let token = h
            .idp
            .token()
            .audience(AUDIENCE)
            .scope(scope)
            .claim("groups", json!(["admins"]))
            .sign();
        assert_eq!(
            h.bearer_both("/admin", &token).await.status,
            403,
            "{scope:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_read_from_scope_and_scp() {
    let h = Harness::start().await;
    assert_eq!(h.bearer_both("/admin", &admin_token(&h)).await.status, 200);
    let scp_list = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("scp", json!(["admin"]))
        .claim("groups", json!(["admins"]))
        .sign();
    assert_eq!(h.bearer_both("/admin", &scp_list).await.status, 200);
    let scp_string = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("scp", json!("read admin"))
        .claim("groups", json!(["admins"]))
        .sign();
    assert_eq!(h.bearer_both("/admin", &scp_string).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_required_scope_must_be_present() {
    let h = Harness::start().await;
    let claims = |t: oidc_auth::testing::TokenBuilder| {
        t.claim("groups", json!(["staff"]))
            .claim("tenant", json!(["acme"]))
    };
    let both = claims(h.idp.token().audience(AUDIENCE).scope("write read")).sign();
    assert_eq!(h.bearer_both("/readwrite", &both).await.status, 200);
    let one = claims(h.idp.token().audience(AUDIENCE).scope("read")).sign();
    let reply = h.bearer_both("/readwrite", &one).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply
            .challenge
            .unwrap_or_default()
            .contains("scope=\"read write\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_constraint_requires_the_value_in_the_list() {
    let h = Harness::start().await;
    let without = h
        .idp
        .token()
        .audience(AUDIENCE)
        .scope("admin")
        .claim("groups", json!(["users"]))
        .sign();
    let reply = h.bearer_both("/admin", &without).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error(), Some("access_denied"));
    let missing = h.idp.token().audience(AUDIENCE).scope("admin").sign();
    assert_eq!(h.bearer_both("/admin", &missing).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_constraint_follows_a_dotted_path_and_accepts_any_listed_value() {
    let h = Harness::start().await;
    for role in ["ops", "sre"] {
        let token = h
            .idp
            .token()
            .audience(AUDIENCE)
            .claim("realm_access", json!({"roles": ["x", role]}))
            .sign();
        assert_eq!(h.bearer_both("/ops", &token).await.status, 200, "{role}");
    }
    let other = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("realm_access", json!({"roles": ["dev"]}))
        .sign();
    assert_eq!(h.bearer_both("/ops", &other).await.status, 403);
    let flat = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("roles", json!(["ops"]))
        .sign();
    assert_eq!(h.bearer_both("/ops", &flat).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_named_with_dots_is_matched_by_its_whole_name() {
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(
        idp,
        |b| b.claims([ClaimConstraint::new("https://example.com/roles", ["ops"])]),
        None,
    )
    .await;
    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("https://example.com/roles", json!(["ops"]))
        .sign();
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
    let without = h.idp.token().audience(AUDIENCE).sign();
    assert_eq!(h.bearer_both("/me", &without).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_claim_constraints_must_all_hold() {
    let h = Harness::start().await;
    let base = || h.idp.token().audience(AUDIENCE).scope("read write");
    let all = base()
        .claim("groups", json!(["staff"]))
        .claim("tenant", json!(["acme"]))
        .sign();
    let idp_string_tenant = base()
        .claim("groups", json!(["staff"]))
        .claim("tenant", json!(["other"]))
        .sign();
    let only_group = base().claim("groups", json!(["staff"])).sign();
    assert_eq!(h.bearer_both("/readwrite", &all).await.status, 200);
    assert_eq!(
        h.bearer_both("/readwrite", &idp_string_tenant).await.status,
        403
    );
    assert_eq!(h.bearer_both("/readwrite", &only_group).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_claim_counts_as_a_list_only_when_configured() {
    let strict = Harness::start().await;
    let token = |h: &Harness| {
        h.idp
            .token()
            .audience(AUDIENCE)
            .scope("read write")
            .claim("groups", json!("staff"))
            .claim("tenant", json!("acme"))
            .sign()
    };
    assert_eq!(
        strict
            .bearer_both("/readwrite", &token(&strict))
            .await
            .status,
        403
    );
    let idp = MockProvider::start().await.expect("provider");
    let lenient = Harness::with(idp, |b| b.string_claims_as_lists(true), None).await;
    assert_eq!(
        lenient
            .bearer_both("/readwrite", &token(&lenient))
            .await
            .status,
        200
    );
    let split = lenient
        .idp
        .token()
        .audience(AUDIENCE)
        .scope("read write")
        .claim("groups", json!("staff,users"))
        .claim("tenant", json!("acme"))
        .sign();
    assert_eq!(lenient.bearer_both("/readwrite", &split).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_default_claims_apply_to_every_protected_route() {
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(
        idp,
        |b| b.claims([ClaimConstraint::new("email_verified", [true])]),
        None,
    )
    .await;
    let unverified = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("email_verified", json!(false))
        .sign();
    assert_eq!(h.bearer_both("/me", &unverified).await.status, 403);
    let verified = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("email_verified", json!(true))
        .sign();
    assert_eq!(h.bearer_both("/me", &verified).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_gives_none_without_a_token_and_for_an_invalid_one() {
    let h = Harness::start().await;
    let valid = h.idp.token().audience(AUDIENCE).sign();
    let expired = h.idp.token().audience(AUDIENCE).expires_in(-3600).sign();
    for fw in FRAMEWORKS {
        let anonymous = h.get(fw, "/feed", None).await;
        assert_eq!(
            (anonymous.status, anonymous.body.clone()),
            (200, json!({"authenticated": false}))
        );
        let signed_in = h.bearer(fw, "/feed", &valid).await;
        assert_eq!(signed_in.body, json!({"authenticated": true}), "{fw:?}");
        let invalid = h.bearer(fw, "/feed", &expired).await;
        assert_eq!(
            (invalid.status, invalid.body),
            (200, json!({"authenticated": false}))
        );
        let malformed = h.get(fw, "/feed", Some("Bearer a b")).await;
        assert_eq!(malformed.body, json!({"authenticated": false}), "{fw:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_gives_none_during_a_provider_outage() {
    let h = Harness::start().await;
    h.idp.set_fault_all(Fault::Down);
    let token = h.idp.token().audience(AUDIENCE).sign();
    for fw in FRAMEWORKS {
        let reply = h.bearer(fw, "/feed", &token).await;
        assert_eq!(
            (reply.status, reply.body),
            (200, json!({"authenticated": false})),
            "{fw:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_at_cold_start_answers_503_with_retry_after() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_fault_all(Fault::Down);
    let h = Harness::with(idp, |b| b.timeout(Duration::from_secs(2)), None).await;
    let token = h.idp.token().audience(AUDIENCE).sign();
    let reply = h.bearer_both("/me", &token).await;
    assert_eq!(reply.status, 503);
    assert!(reply.retry_after.is_some());
    assert_eq!(reply.error(), Some("temporarily_unavailable"));
    assert!(!h.auth.is_ready());
}

/// The cache is observable when the keys are unusable: a stale JWKS and a provider that is down
/// refuse new tokens (503) while a token validated earlier is still served, until its `exp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_token_is_served_from_the_cache_but_never_past_exp() {
    let start = oidc_auth::Clock::now(&oidc_auth::SystemClock);
    let clock = ManualClock::new(start);
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(
        idp,
        |b| {
            b.leeway(Duration::ZERO)
                .jwks_ttl(Duration::from_secs(60))
                .jwks_stale_limit(Duration::from_secs(60))
        },
        Some(clock.clone()),
    )
    .await;
    let token = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(start)
        .expires_in(120)
        .sign();
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
    h.idp.set_fault_all(Fault::Down);
    clock.advance(61);
    let fresh = h
        .idp
        .token()
        .audience(AUDIENCE)
        .issued_at(start + 61)
        .expires_in(120)
        .sign();
    assert_eq!(h.bearer_both("/me", &fresh).await.status, 503);
    assert_eq!(h.bearer_both("/me", &token).await.status, 200);
    clock.advance(59);
    assert_ne!(h.bearer_both("/me", &token).await.status, 200);
}

/// The guard rejects before the handler reads the body: the server answers 401 while the client
/// has sent only the headers of a large upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_happens_before_the_body_is_read() {
    let h = Harness::start().await;
    for fw in FRAMEWORKS {
        let mut stream = tokio::net::TcpStream::connect(h.addr(fw))
            .await
            .expect("connect");
        let head = "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 104857600\r\n\r\n";
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send headers");
        let mut buf = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered without the body")
            .expect("read");
        let answer = String::from_utf8_lossy(&buf[..read]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{fw:?}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_agree_on_every_route() {
    let h = Harness::start().await;
    let token = admin_token(&h);
    for path in [
        "/public",
        "/me",
        "/admin",
        "/ops",
        "/verified",
        "/readwrite",
        "/feed",
    ] {
        let a = h.bearer(Framework::Axum, path, &token).await;
        let b = h.bearer(Framework::Actix, path, &token).await;
        assert_eq!((a.status, a.body), (b.status, b.body), "{path}");
    }
}
