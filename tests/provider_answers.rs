//! What the auth endpoints answer, on both frameworks, when the provider refuses a request, is
//! busy, or answers something a client cannot use.
//!
//! The caller's own grant refused (`invalid_grant`, `authorization_pending`, ...) is a 400 with
//! the provider's code at top level. This server's own client refused (`invalid_client`,
//! `unauthorized_client`, `unsupported_grant_type`) is a misconfiguration for the operator: 502,
//! logged as an error, and never passed on as if the caller's grant had failed. A busy provider
//! (408, 429, 503, 504) is 503 with `Retry-After`, except at a device poll, where it is
//! `slow_down` so that the client goes on polling. An answer no client can use is 502. The device
//! route answers 503 to every refusal, to an advertised endpoint that is not there or fails, and
//! to an answer no client can use, since that is what makes py-oidc-auth-client fall back to the
//! browser flow (DESIGN section 5).

use std::sync::Arc;

use oidc_auth::OidcAuth;
use oidc_auth::store::memory::MemoryStore;
use oidc_auth::testing::{Endpoint, Fault};
use oidc_auth_tests::broker::{field, serve_broker};
use oidc_auth_tests::logs::CapturedLogs;
use oidc_auth_tests::{
    FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, base_config, browser_login, client_code_flow,
    client_token_call, flow_provider,
};
use serde_json::{Value, json};

const TOKEN: &str = "/api/auth/v2/token";
const DEVICE: &str = "/api/auth/v2/device";
const USERINFO: &str = "/api/auth/v2/userinfo";
/// The codes by which a provider refuses this server's client rather than the caller's grant.
const OWN_CLIENT_REFUSALS: [&str; 3] = [
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
];
/// The secret the provider has registered for `test-client`.
const RIGHT_SECRET: &str = "the-secret-the-provider-knows";
/// The secret a misconfigured server sends instead.
const WRONG_SECRET: &str = "a-secret-the-provider-does-not-know";
/// A provider `error_description` that must not reach the client.
const PROVIDER_DESCRIPTION: &str = "client authentication failed for the secret s3cr3t";

async fn harness() -> Harness {
    Harness::with(flow_provider().await, |b| b.client_id("test-client"), None).await
}

/// A provider that knows `test-client` by [`RIGHT_SECRET`], and a server configured with
/// [`WRONG_SECRET`].
async fn misconfigured() -> Harness {
    let idp = flow_provider().await;
    idp.set_client("test-client", Some(RIGHT_SECRET));
    Harness::with(
        idp,
        |b| b.client_id("test-client").client_secret(WRONG_SECRET),
        None,
    )
    .await
}

fn assert_answer(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, Some(error)),
        "{what}: {}",
        reply.raw_body
    );
    assert!(reply.body.get("access_token").is_none(), "{what}");
}

/// 502 `server_error` that passes on nothing the provider said.
fn assert_gateway_error(reply: &Reply, what: &str) {
    assert_answer(reply, 502, "server_error", what);
    for said in [PROVIDER_DESCRIPTION, WRONG_SECRET, RIGHT_SECRET] {
        assert!(!reply.raw_body.contains(said), "{what}: {}", reply.raw_body);
    }
}

/// 503 `temporarily_unavailable` with `Retry-After`.
fn assert_try_later(reply: &Reply, what: &str) {
    assert_answer(reply, 503, "temporarily_unavailable", what);
    assert!(reply.retry_after.is_some(), "{what}: no Retry-After");
}

/// A grant passed to a provider that could not answer: 503 with `Retry-After` to try again
/// later, and for a device poll 400 `slow_down`, the answer at which a device client goes on
/// polling (py-oidc-auth-client takes a 503 for "no device flow" and gives the flow up).
fn assert_try_later_at(grant: &str, reply: &Reply, what: &str) {
    if grant == "device-code" {
        assert_answer(reply, 400, "slow_down", what);
    } else {
        assert_try_later(reply, what);
    }
}

/// The refresh and device-code grants the token route passes to the provider, as
/// py-oidc-auth-client sends them.
const PASSED_GRANTS: [(&str, &str); 2] = [("refresh-token", "r-1"), ("device-code", "d-1")];

// ------------------------------------------------------------------------------------------
// This server's client refused
// ------------------------------------------------------------------------------------------

/// The provider refusing this server's client (each code, with 400 and 401) at a refresh or a
/// device poll: 502 `server_error`, not the provider's code, which the client would take for a
/// failure of its own grant. The provider's refusal of the grant itself keeps its 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_this_servers_client_is_502_at_refresh_and_device_polling() {
    let h = harness().await;
    for code in OWN_CLIENT_REFUSALS {
        for status in [400, 401] {
            let refusal = json!({"error": code, "error_description": PROVIDER_DESCRIPTION});
            h.idp
                .set_fault(Endpoint::Token, Fault::Json(status, refusal));
            for fw in FRAMEWORKS {
                for grant in PASSED_GRANTS {
                    let hits = h.idp.hits(Endpoint::Token);
                    let reply = h.post_form(fw, TOKEN, &[grant]).await;
                    let what = format!("{status} {code} at {} on {fw:?}", grant.0);
                    assert_gateway_error(&reply, &what);
                    assert_eq!(h.idp.hits(Endpoint::Token), hits + 1, "{what}");
                }
            }
        }
    }
    h.idp.set_fault(
        Endpoint::Token,
        Fault::Json(400, json!({"error": "invalid_grant"})),
    );
    for fw in FRAMEWORKS {
        for grant in PASSED_GRANTS {
            let reply = h.post_form(fw, TOKEN, &[grant]).await;
            assert_answer(&reply, 400, "invalid_grant", grant.0);
        }
    }
}

/// A server with the wrong client secret, refused by the provider itself (401
/// `invalid_client`): the client's code exchange and refresh are 502, the secret appears in no
/// answer, and the device route still answers 503 so that clients use the browser flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_502_at_code_exchange_and_refresh() {
    let h = misconfigured().await;
    for fw in FRAMEWORKS {
        let hits = h.idp.hits(Endpoint::Token);
        let exchanged = client_code_flow(&h, fw).await;
        assert_gateway_error(&exchanged, &format!("code exchange on {fw:?}"));
        let refreshed = h.post_form(fw, TOKEN, &[PASSED_GRANTS[0]]).await;
        assert_gateway_error(&refreshed, &format!("refresh on {fw:?}"));
        assert_eq!(h.idp.hits(Endpoint::Token), hits + 2, "{fw:?}");
        let device = h.post_form(fw, DEVICE, &[]).await;
        assert_answer(&device, 503, "temporarily_unavailable", "device start");
    }
}

/// The operator learns of the misconfiguration: the refusal of this server's client is logged
/// at ERROR with the provider's code, and without the secret. The endpoint is called directly,
/// on this thread's runtime, so that a subscriber for this test alone sees its logs.
#[tokio::test]
async fn a_refusal_of_this_servers_client_is_logged_as_an_error_with_its_code() {
    let idp = flow_provider().await;
    idp.set_client("test-client", Some(RIGHT_SECRET));
    let config = base_config(&idp)
        .client_id("test-client")
        .client_secret(WRONG_SECRET)
        .build()
        .expect("test configuration is valid");
    let auth = OidcAuth::builder(config).build();
    let log = CapturedLogs::default();
    let subscriber = log.builder(tracing::Level::INFO).finish();
    // A second registered dispatcher: with only one, tracing asks just the registering
    // thread's own default about a callsite, so a callsite another test's thread reached first
    // would stay disabled for this test's subscriber too.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    let refused = auth
        .token_endpoint(b"refresh-token=r-1")
        .await
        .expect_err("the provider refuses the client");
    assert_eq!(refused.status(), 502);
    let text = log.text();
    assert_eq!(log.count("ERROR", "invalid_client"), 1, "{text}");
    assert!(!text.contains(WRONG_SECRET), "{text}");
}

/// A provider that throttles or fails answers every request so while it lasts: the log says so
/// once as a warning, and the other answers within ten seconds at DEBUG, not a warning per
/// request. The grant route and userinfo share the pace. The endpoints are called directly, on
/// this thread's runtime, so that a subscriber for this test alone sees their logs.
#[tokio::test]
async fn a_throttling_or_failing_provider_is_warned_of_once_not_per_request() {
    let idp = flow_provider().await;
    let auth = OidcAuth::builder(
        base_config(&idp)
            .client_id("test-client")
            .build()
            .expect("config"),
    )
    .build();
    let token = idp.token().audience(oidc_auth_tests::AUDIENCE).sign();
    let log = CapturedLogs::default();
    let subscriber = log.builder(tracing::Level::DEBUG).finish();
    // See `a_refusal_of_this_servers_client_is_logged_as_an_error_with_its_code`.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut answers = 0;
    for fault in [Fault::Status(429), Fault::Status(503), Fault::Status(500)] {
        idp.set_fault(Endpoint::Token, fault.clone());
        idp.set_fault(Endpoint::Userinfo, fault);
        for _ in 0..10 {
            let refused = auth.token_endpoint(b"refresh-token=r-1").await;
            assert!(refused.is_err(), "{refused:?}");
            let refused = auth
                .userinfo_endpoint([format!("Bearer {token}").as_bytes()])
                .await;
            assert!(refused.is_err(), "{refused:?}");
            answers += 2;
        }
    }
    let message = "identity provider could not serve a request";
    let text = log.text();
    assert_eq!(log.warnings(message), 1, "{text}");
    assert_eq!(log.count("DEBUG", message), answers - 1, "{text}");
}

// ------------------------------------------------------------------------------------------
// A busy provider
// ------------------------------------------------------------------------------------------

/// A provider that is busy or behind a gateway that gave up (503, 504), like one that timed
/// out or throttles (408, 429), with an error body or a body without a code: at the code
/// exchange and the refresh, 503 with `Retry-After`, and at the device poll `slow_down`; never
/// 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_provider_is_503_with_retry_after_or_slow_down_at_every_grant() {
    let h = harness().await;
    for status in [503, 504, 408, 429] {
        for fault in [Fault::Status(status), Fault::Json(status, json!("busy"))] {
            for fw in FRAMEWORKS {
                let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
                h.idp.set_fault(Endpoint::Token, fault.clone());
                let what = format!("{fault:?} on {fw:?}");
                let exchanged = client_token_call(&h, fw, &callback).await;
                assert_try_later(&exchanged, &format!("code exchange, {what}"));
                for grant in PASSED_GRANTS {
                    let reply = h.post_form(fw, TOKEN, &[grant]).await;
                    assert_try_later_at(grant.0, &reply, &format!("{}, {what}", grant.0));
                }
                h.idp.set_fault(Endpoint::Token, Fault::None);
            }
        }
    }
}

/// A provider that says how long to wait (`Retry-After` in seconds or as an HTTP date) has
/// that wait passed on, at every provider call a client's request makes: the code exchange,
/// the refresh, the device start and the userinfo, and on the `slow_down` of a device poll. A wait over an hour is
/// cut to an hour, 0 becomes 1 s, and an unreadable value the default 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_retry_after_is_passed_on_within_bounds() {
    let h = harness().await;
    let tokens = client_code_flow(&h, FRAMEWORKS[0]).await;
    let access = field(&tokens, "access_token").to_owned();
    let in_90_seconds = std::time::SystemTime::now() + std::time::Duration::from_secs(90);
    let cases = [
        (429, "120".to_owned(), 120..=120),
        (503, httpdate::fmt_http_date(in_90_seconds), 85..=91),
        (503, "86400".to_owned(), 3600..=3600),
        (429, "0".to_owned(), 1..=1),
        (504, "soon".to_owned(), 5..=5),
    ];
    for (status, wait, expected) in cases {
        let fault = Fault::RetryAfter(status, wait);
        for fw in FRAMEWORKS {
            let what = format!("{fault:?} on {fw:?}");
            let told = |reply: &Reply, call: &str| {
                assert_try_later(reply, &format!("{call}, {what}"));
                let secs = reply.retry_after.as_deref().and_then(|s| s.parse().ok());
                assert!(
                    secs.is_some_and(|s: u64| expected.contains(&s)),
                    "{call}, {what}: Retry-After {:?}, expected {expected:?}",
                    reply.retry_after
                );
            };
            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            h.idp.set_fault(Endpoint::Token, fault.clone());
            told(&client_token_call(&h, fw, &callback).await, "code exchange");
            let (refresh, device) = (PASSED_GRANTS[0], PASSED_GRANTS[1]);
            told(&h.post_form(fw, TOKEN, &[refresh]).await, refresh.0);
            let polled = h.post_form(fw, TOKEN, &[device]).await;
            assert_try_later_at(device.0, &polled, &format!("device poll, {what}"));
            let secs = polled.retry_after.as_deref().and_then(|s| s.parse().ok());
            assert!(
                secs.is_some_and(|s: u64| expected.contains(&s)),
                "device poll, {what}: Retry-After {:?}, expected {expected:?}",
                polled.retry_after
            );
            h.idp.set_fault(Endpoint::Token, Fault::None);
            h.idp.set_fault(Endpoint::Device, fault.clone());
            told(&h.post_form(fw, DEVICE, &[]).await, "device start");
            h.idp.set_fault(Endpoint::Device, Fault::None);
            h.idp.set_fault(Endpoint::Userinfo, fault.clone());
            told(&h.bearer(fw, USERINFO, &access).await, "userinfo");
            h.idp.set_fault(Endpoint::Userinfo, Fault::None);
        }
    }
}

/// The revocations at the provider since it had counted `before`, once `expected` of them
/// have arrived (they are made in the background) or after 5 s.
async fn revocations_since(h: &Harness, before: usize, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while h.idp.hits(Endpoint::Revocation) < before + expected
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.idp.hits(Endpoint::Revocation) - before
}

/// A code exchange the provider granted but whose ID token fails (a wrong nonce) is refused,
/// and the provider's refresh token of that answer, which the client never gets, is revoked
/// at the provider rather than left live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_code_exchange_whose_id_token_fails_revokes_the_providers_token() {
    let h = harness().await;
    h.idp
        .set_id_token_tweak(Some(Arc::new(|c: &mut serde_json::Map<String, Value>| {
            c.insert("nonce".into(), json!("another login's nonce"));
        })));
    for fw in FRAMEWORKS {
        let revocations = h.idp.hits(Endpoint::Revocation);
        let reply = client_code_flow(&h, fw).await;
        assert_eq!(reply.status, 400, "{fw:?}: {}", reply.raw_body);
        assert!(reply.body.get("refresh_token").is_none(), "{fw:?}");
        assert_eq!(revocations_since(&h, revocations, 1).await, 1, "{fw:?}");
    }
}

/// A refresh the provider answers 200 without an access token is 502, and nothing is revoked:
/// not the refresh token the client sent and still holds, when the answer repeats it (a
/// provider that does not rotate them), nor a new one in the answer. That one is of the grant
/// the client holds a token of, so it gives no more than that token; revoking it would end the
/// whole grant at many providers (Keycloak's session, a rotation family), the client's token
/// with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_refresh_answer_revokes_nothing() {
    let h = harness().await;
    for (answered, revoked) in [("r-held", 0), ("r-new", 0)] {
        for fw in FRAMEWORKS {
            let what = format!("{answered} on {fw:?}");
            h.idp.set_fault(
                Endpoint::Token,
                Fault::Json(
                    200,
                    json!({"refresh_token": answered, "token_type": "Bearer"}),
                ),
            );
            let revocations = h.idp.hits(Endpoint::Revocation);
            let reply = h.post_form(fw, TOKEN, &[("refresh-token", "r-held")]).await;
            assert_gateway_error(&reply, &what);
            // Time for a revocation that should not come to arrive anyway.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let made = revocations_since(&h, revocations, revoked).await;
            assert_eq!(made, revoked, "{what}");
        }
    }
    h.idp.set_fault(Endpoint::Token, Fault::None);
}

/// The form py-oidc-auth-client posts to the token route after a login that ended at
/// `callback`.
fn code_form(callback: &url::Url) -> Vec<(String, String)> {
    let query = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let state = query("state");
    let verifier = state.rsplit('|').next().unwrap_or_default().to_owned();
    vec![
        ("code".to_owned(), query("code")),
        ("redirect_uri".to_owned(), LOOPBACK.to_owned()),
        ("code_verifier".to_owned(), verifier),
    ]
}

/// A client that gives up after 200 ms, and how late a provider answers to outlast it.
fn impatient_client() -> (reqwest::Client, std::time::Duration) {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    (client, std::time::Duration::from_millis(700))
}

/// A harness, and the refresh token of a client's code flow on `fw`.
async fn signed_in(fw: Framework) -> (Harness, String) {
    let h = harness().await;
    let first = client_code_flow(&h, fw).await;
    let held = first.body["refresh_token"].as_str().unwrap_or_default();
    assert!(!held.is_empty(), "{}", first.raw_body);
    let held = held.to_owned();
    (h, held)
}

/// A client that gives up while its code exchange is under way, on axum, whose server drops
/// the handler when the connection closes: while the provider works on it (it spends the code
/// at once and answers late), and after the provider answered, while the ID token's new key is
/// fetched from a slow JWKS. Each time the refresh token of the answer, which no client will
/// hold, is revoked at the provider. A refresh given up on revokes nothing (the client still
/// holds a token of that grant: see `an_unusable_refresh_answer_revokes_nothing`), and a late
/// answer to a request still waiting is delivered and revokes nothing.
/// (actix-web runs a handler to its end after the client has gone: the answer is made and lost
/// in transit, as an answer on a broken connection is, and no server can tell.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_client_gave_up_revokes_the_refresh_token_it_would_have_had() {
    let fw = Framework::Axum;
    let (h, held) = signed_in(fw).await;
    let held = held.as_str();
    let (impatient, late) = impatient_client();
    let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
    let refresh_form = vec![("refresh-token".to_owned(), held.to_owned())];
    let cases = [
        ("code", Endpoint::Token, code_form(&callback), 1),
        ("refresh", Endpoint::Token, refresh_form, 0),
        ("ID token key", Endpoint::Jwks, Vec::new(), 1),
    ];
    for (what, slow, mut form, revoked) in cases {
        if slow == Endpoint::Jwks {
            h.idp.rotate_key(oidc_auth::testing::SigningAlg::ES256);
            form = code_form(&browser_login(&h, fw, LOOPBACK).await.1);
            h.idp.set_fault(slow, Fault::Slow(late));
        } else {
            h.idp.set_fault(slow, Fault::Late(late));
        }
        let revocations = h.idp.hits(Endpoint::Revocation);
        let earlier = h.idp.last_revocation_request();
        let gave_up = impatient.post(h.url(fw, TOKEN)).form(&form).send().await;
        assert!(gave_up.is_err(), "{what}: the client should have timed out");
        if revoked == 0 {
            // Time for the late answer to arrive, and a revocation that should not come.
            tokio::time::sleep(late + std::time::Duration::from_millis(300)).await;
        }
        let made = revocations_since(&h, revocations, revoked).await;
        assert_eq!(made, revoked, "{what}");
        h.idp.set_fault(slow, Fault::None);
        if revoked == 1 {
            let last = h.idp.last_revocation_request();
            assert_ne!(last, earlier, "{what}");
            let token = last.as_ref().map(|form| form["token"].as_str());
            assert!(
                token.is_some_and(|t| !t.is_empty() && t != held),
                "{what}: {token:?}"
            );
        }
    }
    h.idp.set_fault(Endpoint::Token, Fault::Late(late));
    let revocations = h.idp.hits(Endpoint::Revocation);
    let waited = client_code_flow(&h, fw).await;
    h.idp.set_fault(Endpoint::Token, Fault::None);
    assert_eq!(waited.status, 200, "{}", waited.raw_body);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(revocations_since(&h, revocations, 0).await, 0);
}

/// Without broker mode, a refresh the client gave up on (axum drops its handler) still gets
/// the provider's answer, which rotates the refresh token. That answer is handed to the
/// client's retry with the old token, once and without asking the provider again, which
/// would take the spent token for a replay and end the grant. The token handed out is the
/// provider's live one, and the old token presented once more is the provider's to judge:
/// a replay, refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answer_no_client_received_is_handed_to_its_retry_once() {
    let fw = Framework::Axum;
    let (h, held) = signed_in(fw).await;
    let held = held.as_str();
    let (impatient, late) = impatient_client();

    h.idp.set_fault(Endpoint::Token, Fault::Late(late));
    let gave_up = impatient
        .post(h.url(fw, TOKEN))
        .form(&[("refresh-token", held)])
        .send()
        .await;
    assert!(gave_up.is_err(), "the client should have timed out");
    tokio::time::sleep(late + std::time::Duration::from_millis(300)).await;
    h.idp.set_fault(Endpoint::Token, Fault::None);

    let asked = h.idp.hits(Endpoint::Token);
    let retry = h.post_form(fw, TOKEN, &[("refresh-token", held)]).await;
    assert_eq!(retry.status, 200, "{}", retry.raw_body);
    assert_eq!(
        h.idp.hits(Endpoint::Token),
        asked,
        "the provider is not asked again"
    );
    let rotated = retry.body["refresh_token"].as_str().unwrap_or_default();
    assert!(!rotated.is_empty() && rotated != held, "{}", retry.raw_body);
    assert!(
        retry.body["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        retry.raw_body
    );

    // The rotated token is the provider's live one.
    let next = h.post_form(fw, TOKEN, &[("refresh-token", rotated)]).await;
    assert_eq!(next.status, 200, "{}", next.raw_body);
    assert_eq!(h.idp.hits(Endpoint::Token), asked + 1);
    // Handed out once: the old token again goes to the provider, which refuses the replay.
    let replay = h.post_form(fw, TOKEN, &[("refresh-token", held)]).await;
    assert_eq!(replay.status, 400, "{}", replay.raw_body);
    assert_eq!(replay.error(), Some("invalid_grant"), "{}", replay.raw_body);
    assert_eq!(h.idp.hits(Endpoint::Token), asked + 2);
}

/// The device route: a busy provider is 503 with `Retry-After`; an advertised device endpoint
/// that is not there (404, 405, 501, with a JSON error or without) is 503 as a missing one is,
/// and so is one that fails (500, 502) or answers what is not JSON: the client then uses the
/// browser flow, where a 502 would end its login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_start_is_503_when_the_advertised_endpoint_is_missing_busy_or_broken() {
    let h = harness().await;
    let mut cases = Vec::new();
    for status in [503, 504, 408, 429] {
        cases.push((Fault::Status(status), 503));
    }
    for status in [404, 405, 501] {
        cases.push((Fault::Status(status), 503));
        cases.push((Fault::Json(status, json!({"message": "Not Found"})), 503));
    }
    for fault in [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Garbage,
        Fault::Truncated,
    ] {
        cases.push((fault, 503));
    }
    for (fault, expected) in cases {
        h.idp.set_fault(Endpoint::Device, fault.clone());
        for fw in FRAMEWORKS {
            let hits = h.idp.hits(Endpoint::Device);
            let reply = h.post_form(fw, DEVICE, &[]).await;
            let what = format!("{fault:?} on {fw:?}");
            assert_eq!(reply.status, expected, "{what}: {}", reply.raw_body);
            if expected == 503 {
                assert_try_later(&reply, &what);
            }
            assert_eq!(h.idp.hits(Endpoint::Device), hits + 1, "{what}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Device answers no client can use
// ------------------------------------------------------------------------------------------

/// A device authorization answer a client can use.
fn device_answer() -> Value {
    json!({
        "device_code": "device-code-1",
        "user_code": "ABCD-EFGH",
        "verification_uri": "https://op.example/device",
        "verification_uri_complete": "https://op.example/device?user_code=ABCD-EFGH",
        "expires_in": 600,
        "interval": 5,
    })
}

/// The device answer with `field` set to `value`, or removed when `value` is `None`.
fn device_answer_with(field: &str, value: Option<Value>) -> Value {
    let mut answer = device_answer();
    if let Some(map) = answer.as_object_mut() {
        match value {
            Some(value) => map.insert(field.to_owned(), value),
            None => map.remove(field),
        };
    }
    answer
}

/// Device answers whose fields a client cannot use: codes that are empty or not strings,
/// verification URIs that are relative or of another scheme, an `expires_in` that is not a
/// positive integer, an `interval` that is not a non-negative integer.
fn unusable_device_answers() -> Vec<(String, Value)> {
    let cases: [(&str, Option<Value>); 21] = [
        ("device_code", None),
        ("device_code", Some(json!(""))),
        ("device_code", Some(json!(42))),
        ("device_code", Some(json!({"code": "x"}))),
        ("user_code", Some(json!(""))),
        ("user_code", Some(Value::Null)),
        ("user_code", Some(json!(["ABCD"]))),
        ("verification_uri", Some(json!("/device"))),
        ("verification_uri", Some(json!("op.example/device"))),
        ("verification_uri", Some(json!("javascript:alert(1)"))),
        ("verification_uri", Some(json!("ftp://op.example/device"))),
        ("verification_uri", Some(json!(1))),
        (
            "verification_uri_complete",
            Some(json!("device?user_code=1")),
        ),
        ("verification_uri_complete", Some(json!(true))),
        ("expires_in", Some(json!(0))),
        ("expires_in", Some(json!(-600))),
        ("expires_in", Some(json!(600.5))),
        ("expires_in", Some(json!("600 s"))),
        ("interval", Some(json!(-1))),
        ("interval", Some(json!(2.5))),
        ("interval", Some(json!("-5"))),
    ];
    cases
        .into_iter()
        .map(|(field, value)| {
            let shown = format!("{field} = {value:?}");
            (shown, device_answer_with(field, value))
        })
        .collect()
}

/// A device answer with a field no client can use is 503 (the device flow is not available;
/// the client uses the browser), on both frameworks; the complete answer is passed on (and
/// without `verification_uri_complete` or `interval`, which are optional, it is too, with the
/// default interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_answer_with_unusable_fields_is_503() {
    let h = harness().await;
    for (what, answer) in unusable_device_answers() {
        h.idp.set_fault(Endpoint::Device, Fault::Json(200, answer));
        for fw in FRAMEWORKS {
            let reply = h.post_form(fw, DEVICE, &[]).await;
            assert_try_later(&reply, &format!("{what} on {fw:?}"));
            assert!(reply.body.get("device_code").is_none(), "{what}");
        }
    }
    h.idp
        .set_fault(Endpoint::Device, Fault::Json(200, device_answer()));
    for fw in FRAMEWORKS {
        let reply = h.post_form(fw, DEVICE, &[]).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.body, device_answer(), "{fw:?}");
    }
    let mut minimal = device_answer();
    if let Some(map) = minimal.as_object_mut() {
        map.remove("verification_uri_complete");
        map.remove("interval");
    }
    h.idp
        .set_fault(Endpoint::Device, Fault::Json(200, minimal.clone()));
    for fw in FRAMEWORKS {
        let reply = h.post_form(fw, DEVICE, &[]).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        let mut expected = minimal.clone();
        expected["interval"] = json!(5);
        assert_eq!(reply.body, expected, "{fw:?}");
    }
    // Google's spelling, `verification_url`, and lifetimes as strings (Azure AD v1) are read,
    // and passed on as RFC 8628 has them.
    let mut google = device_answer_with("verification_uri", None);
    google["verification_url"] = device_answer()["verification_uri"].clone();
    google["expires_in"] = json!(device_answer()["expires_in"].to_string());
    google["interval"] = json!(device_answer()["interval"].to_string());
    h.idp.set_fault(Endpoint::Device, Fault::Json(200, google));
    for fw in FRAMEWORKS {
        let reply = h.post_form(fw, DEVICE, &[]).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.body, device_answer(), "{fw:?}");
    }
}

/// In broker mode this server paces the polls of every device code it hands out, which needs
/// the code as a string: a device answer whose `device_code` is not a string (or is empty) is
/// 503, never a code handed out unpaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_device_answer_without_a_string_device_code_is_503() {
    let h = serve_broker(
        oidc_auth_tests::broker::provider().await,
        Arc::new(MemoryStore::new()),
        |c| c,
        None,
    )
    .await;
    for value in [json!(42), json!(["device-code-1"]), json!("")] {
        let answer = device_answer_with("device_code", Some(value.clone()));
        h.idp.set_fault(Endpoint::Device, Fault::Json(200, answer));
        for fw in FRAMEWORKS {
            let reply = h.post_form(fw, DEVICE, &[]).await;
            assert_try_later(&reply, &format!("device_code {value} on {fw:?}"));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Userinfo
// ------------------------------------------------------------------------------------------

/// The provider's userinfo answered 200 with no usable subject (not a JSON object, no `sub`,
/// a `sub` that is not a non-empty string): the provider's fault, 502, not a 400 that blames
/// the caller. A subject that is not the token's stays 400 `invalid_request` (SECURITY D9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userinfo_answer_without_a_subject_is_502() {
    let h = harness().await;
    let tokens = client_code_flow(&h, FRAMEWORKS[0]).await;
    let access = field(&tokens, "access_token").to_owned();
    for answer in [
        json!(["alice"]),
        json!("alice"),
        json!(null),
        json!({"preferred_username": "alice"}),
        json!({"sub": 42, "preferred_username": "alice"}),
        json!({"sub": null}),
        json!({"sub": ["alice"]}),
        json!({"sub": ""}),
    ] {
        h.idp.set_userinfo_override(Some(answer.clone()));
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, USERINFO, &access).await;
            assert_answer(&reply, 502, "server_error", &format!("{answer} on {fw:?}"));
        }
    }
    h.idp.set_userinfo_override(Some(json!({"sub": "mallory"})));
    for fw in FRAMEWORKS {
        let reply = h.bearer(fw, USERINFO, &access).await;
        assert_answer(&reply, 400, "invalid_request", "another subject");
    }
}

/// A busy userinfo (408, 429, 503, 504) is 503 with `Retry-After`, like the other provider
/// calls; a failing one (500) stays 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_userinfo_is_503_with_retry_after() {
    let h = harness().await;
    let tokens = client_code_flow(&h, FRAMEWORKS[0]).await;
    let access = field(&tokens, "access_token").to_owned();
    for status in [429, 503, 504, 408] {
        for fault in [Fault::Status(status), Fault::Json(status, json!("busy"))] {
            h.idp.set_fault(Endpoint::Userinfo, fault.clone());
            for fw in FRAMEWORKS {
                let reply = h.bearer(fw, USERINFO, &access).await;
                assert_try_later(&reply, &format!("{fault:?} on {fw:?}"));
            }
        }
    }
    h.idp.set_fault(Endpoint::Userinfo, Fault::Status(500));
    for fw in FRAMEWORKS {
        let reply = h.bearer(fw, USERINFO, &access).await;
        assert_answer(&reply, 502, "server_error", "500");
    }
}

/// A provider that refuses the token at its userinfo (a token issued for this API rather than
/// for the provider's userinfo) leads to an answer from the validated token's claims, also
/// when the refusal has no body, only a `WWW-Authenticate` header, as RFC 6750 servers send
/// it. A bodiless busy answer is 503, a bodiless failure or a non-JSON 200 is 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userinfo_refusal_without_a_body_answers_from_the_token() {
    let h = harness().await;
    let tokens = client_code_flow(&h, FRAMEWORKS[0]).await;
    let access = field(&tokens, "access_token").to_owned();
    let answered = h.bearer(FRAMEWORKS[0], USERINFO, &access).await;
    let user = answered.body["username"].clone();
    assert!(user.is_string(), "{}", answered.raw_body);
    for fault in [
        Fault::Empty(401),
        Fault::Empty(403),
        Fault::Status(401),
        Fault::Status(403),
    ] {
        h.idp.set_fault(Endpoint::Userinfo, fault.clone());
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, USERINFO, &access).await;
            assert_eq!(reply.status, 200, "{fault:?} on {fw:?}: {}", reply.raw_body);
            assert_eq!(reply.body["username"], user, "{fault:?} on {fw:?}");
        }
    }
    h.idp.set_fault(Endpoint::Userinfo, Fault::Empty(503));
    for fw in FRAMEWORKS {
        assert_try_later(&h.bearer(fw, USERINFO, &access).await, "empty 503");
    }
    for fault in [Fault::Empty(500), Fault::Garbage, Fault::Truncated] {
        h.idp.set_fault(Endpoint::Userinfo, fault.clone());
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, USERINFO, &access).await;
            assert_answer(&reply, 502, "server_error", &format!("{fault:?} on {fw:?}"));
        }
    }
}

// ------------------------------------------------------------------------------------------
// The code exchange
// ------------------------------------------------------------------------------------------

/// A provider that accepts the code but sends no ID token (no OpenID Connect for this client):
/// 502, the provider's or its configuration's fault, not an `invalid_grant` that blames the
/// client's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_exchange_without_an_id_token_is_502() {
    let h = harness().await;
    h.idp
        .set_token_response_tweak(Some(Arc::new(|answer: &mut serde_json::Map<_, _>| {
            answer.remove("id_token");
        })));
    for fw in FRAMEWORKS {
        let hits = h.idp.hits(Endpoint::Token);
        let reply = client_code_flow(&h, fw).await;
        assert_gateway_error(&reply, &format!("{fw:?}"));
        assert_eq!(h.idp.hits(Endpoint::Token), hits + 1, "{fw:?}");
    }
    assert_eq!(h.idp.hits(Endpoint::Userinfo), 0);
}
