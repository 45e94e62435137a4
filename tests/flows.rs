//! The auth flows end to end on both frameworks against the mock provider, requests shaped as
//! py-oidc-auth-client sends them, and the SECURITY.md cases D and E for these endpoints.

use std::sync::Arc;

use oidc_auth::testing::{Endpoint, Fault, MockProvider};
use oidc_auth::{Clock, ManualClock, OidcAuth, SystemClock};
use oidc_auth_tests::{
    FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, base_config, browser_login, client_token_call,
    flow_provider, location, query_param,
};
use serde_json::{Map, Value, json};

async fn harness() -> Harness {
    harness_on(None).await
}

async fn harness_on(clock: Option<ManualClock>) -> Harness {
    Harness::with(flow_provider().await, |b| b.client_id("test-client"), clock).await
}

fn assert_token_json(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    reply.assert_not_cached();
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let now = SystemClock.now();
    for field in ["access_token", "token_type", "refresh_token", "scope"] {
        assert!(reply.body[field].is_string(), "{field}: {}", reply.raw_body);
    }
    let expires = reply.body["expires"].as_i64().unwrap_or(0);
    let refresh_expires = reply.body["refresh_expires"].as_i64().unwrap_or(0);
    assert!(
        expires > now && expires < now + 3600,
        "expires is absolute: {expires}"
    );
    assert!(
        refresh_expires > now,
        "refresh_expires is absolute: {refresh_expires}"
    );
}

/// The client's browser flow: login, provider redirect to the loopback listener, token call
/// with the text after the last `|` of `state` as `code_verifier`; the access token then opens
/// protected routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_as_py_oidc_auth_client_does_it() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (authorize, callback) = browser_login(&h, fw, LOOPBACK).await;
        assert!(callback.as_str().starts_with(LOOPBACK));
        let reply = client_token_call(&h, fw, &callback).await;
        assert_token_json(&reply);
        let access = reply.body["access_token"].as_str().unwrap_or_default();
        assert_eq!(h.bearer_both("/me", access).await.status, 200);
        // D6: the provider received the verifier whose S256 is the challenge it was given, and
        // that verifier is nowhere in a URL or our answer.
        let sent = h.idp.last_token_request().unwrap_or_default();
        let verifier = sent.get("code_verifier").cloned().unwrap_or_default();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            query_param(&authorize, "code_challenge").map(|c| c.len()),
            Some(43)
        );
        assert!(!authorize.as_str().contains(&verifier) && !callback.as_str().contains(&verifier));
        assert!(!reply.raw_body.contains(&verifier));
        assert_eq!(
            query_param(&authorize, "scope").map(|s| s.contains("offline_access")),
            Some(true)
        );
    }
}

/// D2: the same state handle is accepted once; the replay is 400 and never reaches the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_handle_is_single_use() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        assert_eq!(client_token_call(&h, fw, &callback).await.status, 200);
        let hits = h.idp.hits(Endpoint::Token);
        let replay = client_token_call(&h, fw, &callback).await;
        assert_eq!(
            (replay.status, replay.error()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(h.idp.hits(Endpoint::Token), hits);
    }
}

/// D1: no handle, a forged one, a tampered one, or one sealed by another server: 400 and no
/// token request at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_missing_state_handles_never_reach_the_provider() {
    let h = harness().await;
    let other = harness().await;
    let (_, foreign_callback) = browser_login(&other, Framework::Axum, LOOPBACK).await;
    let foreign = query_param(&foreign_callback, "state")
        .unwrap_or_default()
        .rsplit('|')
        .next()
        .unwrap_or_default()
        .to_owned();
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let handle = query_param(&callback, "state")
            .unwrap_or_default()
            .rsplit('|')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut tampered = handle.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        let hits = h.idp.hits(Endpoint::Token);
        for verifier in [
            None,
            Some("forged-verifier-forged-verifier-forged-verif"),
            Some(tampered.as_str()),
            Some(foreign.as_str()),
            Some(""),
        ] {
            let mut form = vec![
                ("code", code.as_str()),
                ("redirect_uri", LOOPBACK),
                ("grant_type", "authorization_code"),
            ];
            if let Some(v) = verifier {
                form.push(("code_verifier", v));
            }
            let reply = h.post_form(fw, "/api/auth/v2/token", &form).await;
            assert_eq!(reply.status, 400, "{verifier:?}: {}", reply.raw_body);
        }
        let callback_forged = h
            .get(
                fw,
                &format!("/api/auth/v2/callback?code={code}&state=x%7Cforged"),
                None,
            )
            .await;
        assert_eq!(callback_forged.status, 400);
        assert_eq!(
            h.idp.hits(Endpoint::Token),
            hits,
            "no token request for a forged handle"
        );
    }
}

/// D3: a handle older than its lifetime (10 min) is refused without a provider call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_state_handle_is_refused() {
    let clock = ManualClock::new(SystemClock.now());
    let h = harness_on(Some(clock.clone())).await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        clock.advance(601);
        let hits = h.idp.hits(Endpoint::Token);
        let reply = client_token_call(&h, fw, &callback).await;
        assert_eq!((reply.status, reply.error()), (400, Some("invalid_grant")));
        assert_eq!(h.idp.hits(Endpoint::Token), hits);
        clock.advance(-601);
    }
}

/// The redirect URI of the token call must be the one the login was started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_call_must_repeat_the_login_redirect_uri() {
    let h = harness().await;
    let (_, callback) = browser_login(&h, Framework::Axum, LOOPBACK).await;
    let state = query_param(&callback, "state").unwrap_or_default();
    let code = query_param(&callback, "code").unwrap_or_default();
    let hits = h.idp.hits(Endpoint::Token);
    let reply = h
        .post_form(
            Framework::Actix,
            "/api/auth/v2/token",
            &[
                ("code", &code),
                ("redirect_uri", "http://localhost:53101/callback"),
                (
                    "code_verifier",
                    state.rsplit('|').next().unwrap_or_default(),
                ),
            ],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(h.idp.hits(Endpoint::Token), hits);
}

fn server_callback(h: &Harness, fw: Framework) -> String {
    h.url(fw, "/api/auth/v2/callback")
}

/// The server-side callback: the provider redirects to our `/callback`, which exchanges the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_exchanges_the_code_and_answers_token_json() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, &server_callback(&h, fw)).await;
        let reply = h.get_url(&callback).await;
        assert_token_json(&reply);
    }
}

/// D4: `iss` in the authorization response (RFC 9207) must be the provider's; when the provider
/// says it sends `iss`, a missing one is refused too. No token request either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_checks_the_issuer_of_the_authorization_response() {
    let h = harness().await;
    for (case, tweak) in [
        (
            "wrong iss",
            Arc::new(|q: &mut Vec<(String, String)>| {
                for (k, v) in q.iter_mut() {
                    if k == "iss" {
                        *v = "https://evil.example".into();
                    }
                }
            }) as oidc_auth::testing::QueryTweak,
        ),
        (
            "missing iss",
            Arc::new(|q: &mut Vec<(String, String)>| q.retain(|(k, _)| k != "iss")),
        ),
    ] {
        h.idp.set_authorize_response_tweak(Some(tweak));
        for fw in FRAMEWORKS {
            let (_, callback) = browser_login(&h, fw, &server_callback(&h, fw)).await;
            let hits = h.idp.hits(Endpoint::Token);
            let reply = h.get_url(&callback).await;
            assert_eq!(reply.status, 400, "{case}");
            assert_eq!(h.idp.hits(Endpoint::Token), hits, "{case}");
        }
    }
}

/// D5: the user refused at the provider: a 4xx, the transaction is consumed, no token call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_with_access_denied_clears_the_transaction() {
    let h = harness().await;
    h.idp.set_authorize_error(Some("access_denied".into()));
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, &server_callback(&h, fw)).await;
        let first = h.get_url(&callback).await;
        assert_eq!((first.status, first.error()), (400, Some("access_denied")));
        let again = h.get_url(&callback).await;
        assert_eq!(again.status, 400);
    }
    assert_eq!(h.idp.hits(Endpoint::Token), 0);
}

/// D7: a code from another login injected into the victim's callback fails: the provider's
/// PKCE check refuses it, and without PKCE at the provider the nonce check does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_codes_are_refused() {
    let h = harness().await;
    for check_pkce in [true, false] {
        h.idp.set_check_pkce(check_pkce);
        for fw in FRAMEWORKS {
            let (_, attacker) = browser_login(&h, fw, LOOPBACK).await;
            let (_, victim) = browser_login(&h, fw, LOOPBACK).await;
            let mut injected = victim.clone();
            injected.set_query(Some(&format!(
                "code={}&state={}",
                query_param(&attacker, "code").unwrap_or_default(),
                serde_urlencoded::to_string([(
                    "",
                    query_param(&victim, "state").unwrap_or_default()
                )])
                .unwrap_or_default()[1..]
                    .to_owned()
            )));
            let reply = client_token_call(&h, fw, &injected).await;
            assert_eq!(
                reply.status, 400,
                "pkce at provider {check_pkce}: {}",
                reply.raw_body
            );
            assert!(reply.body.get("access_token").is_none());
        }
    }
}

/// The path of a callback to our server with `state` and these other parameters.
fn callback_to_server(state: &str, params: &[(&str, &str)]) -> String {
    let mut query = vec![("state", state)];
    query.extend_from_slice(params);
    format!(
        "/api/auth/v2/callback?{}",
        serde_urlencoded::to_string(query).unwrap_or_default()
    )
}

/// D2/D5: every redemption spends its handle, whatever its outcome. An error callback, at the
/// server-side callback, clears the transaction: the login's real code is then refused without
/// a provider request, through the client's token call and through the callback. A code the
/// provider refused spends the handle too. (That such redemptions, which need no credentials,
/// cannot fill the set of spent handles and lock sign-ins out is
/// `flow::seal::tests::failed_redemptions_cannot_lock_out_sign_ins`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_callbacks_and_refused_codes_spend_the_handle() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        // An error callback, then the client's token call with the real code.
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let state = query_param(&callback, "state").unwrap_or_default();
        let iss = query_param(&callback, "iss").unwrap_or_default();
        let hits = h.idp.hits(Endpoint::Token);
        let error = h
            .get(
                fw,
                &callback_to_server(&state, &[("error", "x"), ("iss", &iss)]),
                None,
            )
            .await;
        assert_eq!(error.status, 400, "{fw:?}: {}", error.raw_body);
        let real = client_token_call(&h, fw, &callback).await;
        assert_eq!(
            (real.status, real.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            real.raw_body
        );
        assert_eq!(h.idp.hits(Endpoint::Token), hits, "no provider request");

        // A made-up code the provider refuses, then the real one.
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let state = query_param(&callback, "state").unwrap_or_default();
        let handle = state.rsplit('|').next().unwrap_or_default().to_owned();
        let bogus = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[
                    ("code", "bogus-code"),
                    ("redirect_uri", LOOPBACK),
                    ("grant_type", "authorization_code"),
                    ("code_verifier", &handle),
                ],
            )
            .await;
        assert_eq!(
            (bogus.status, bogus.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            bogus.raw_body
        );
        let hits = h.idp.hits(Endpoint::Token);
        let real = client_token_call(&h, fw, &callback).await;
        assert_eq!(real.status, 400, "{fw:?}: {}", real.raw_body);
        assert_eq!(h.idp.hits(Endpoint::Token), hits, "no provider request");

        // The server-side callback: a denial, then the real code.
        let (_, callback) = browser_login(&h, fw, &server_callback(&h, fw)).await;
        let state = query_param(&callback, "state").unwrap_or_default();
        let iss = query_param(&callback, "iss").unwrap_or_default();
        let error = h
            .get(
                fw,
                &callback_to_server(&state, &[("error", "access_denied"), ("iss", &iss)]),
                None,
            )
            .await;
        assert_eq!(
            error.error(),
            Some("access_denied"),
            "{fw:?}: {}",
            error.raw_body
        );
        let hits = h.idp.hits(Endpoint::Token);
        assert_eq!(h.get_url(&callback).await.status, 400, "spent");
        assert_eq!(h.idp.hits(Endpoint::Token), hits);
    }
}

/// D2 under concurrency: while one exchange of a handle is under way at the provider, a second
/// use of it (through the other framework, the same server) is refused at once, and the
/// provider is asked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_in_an_exchange_under_way_is_refused() {
    let h = harness().await;
    let (_, callback) = browser_login(&h, Framework::Axum, LOOPBACK).await;
    let hits = h.idp.hits(Endpoint::Token);
    h.idp.set_fault(
        Endpoint::Token,
        Fault::Slow(std::time::Duration::from_millis(500)),
    );
    let (axum, actix) = tokio::join!(
        client_token_call(&h, Framework::Axum, &callback),
        client_token_call(&h, Framework::Actix, &callback),
    );
    h.idp.set_fault(Endpoint::Token, Fault::None);
    let mut statuses = [axum.status, actix.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{axum:?} / {actix:?}");
    let refused = if axum.status == 400 { &axum } else { &actix };
    assert_eq!(refused.error(), Some("invalid_grant"));
    assert_eq!(h.idp.hits(Endpoint::Token), hits + 1);
}

/// A user in many groups (Azure AD, Keycloak) has an ID token over the 8 KiB bearer limit. It
/// came in the provider's token answer, bounded at 64 KiB, and is never a bearer token here:
/// the login completes on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_over_the_bearer_limit_logs_in() {
    let h = harness().await;
    let groups: Vec<String> = (0..300)
        .map(|i| format!("/department-{i:03}/team-members-with-a-long-name"))
        .collect();
    h.idp.set_user(
        "many-groups",
        json!({"preferred_username": "many", "email": "many@example.com", "groups": groups}),
    );
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let reply = client_token_call(&h, fw, &callback).await;
        assert_token_json(&reply);
        let id_token = reply.body["id_token"].as_str().unwrap_or_default();
        assert!(id_token.len() > 8 * 1024, "{} bytes", id_token.len());
        let (_, callback) = browser_login(&h, fw, &server_callback(&h, fw)).await;
        assert_token_json(&h.get_url(&callback).await);
    }
}

/// `/login` with a redirect URI and scope too long together for the sealed handle (which the
/// callback opens only up to 4,096 characters) is refused with 400 `invalid_request` before the
/// user is sent to the provider, instead of failing at the callback after signing in. A
/// slightly shorter request still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_a_state_the_callback_could_not_open() {
    let h = harness().await;
    let prefix = "http://localhost:53100/";
    let redirect_uri = format!("{prefix}{}", "p".repeat(2_000 - prefix.len()));
    let scope = |words: usize| {
        (0..words)
            .map(|i| format!("scope-{i:03}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let login = |scope: &str| {
        format!(
            "/api/auth/v2/login?{}",
            serde_urlencoded::to_string([
                ("redirect_uri", redirect_uri.as_str()),
                ("scope", scope),
                ("offline_access", "true"),
            ])
            .unwrap_or_default()
        )
    };
    for fw in FRAMEWORKS {
        let hits = h.idp.hits(Endpoint::Authorize);
        let reply = h.get(fw, &login(&scope(100)), None).await;
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("invalid_request")),
            "{fw:?}: {}",
            reply.raw_body
        );
        assert!(reply.location.is_none());
        // The redirect to the provider carries the login's state: not for a cache either.
        let redirect = h.get(fw, &login(&scope(80)), None).await;
        assert_eq!(redirect.status, 302, "{fw:?}");
        redirect.assert_not_cached();

        let authorize = location(&h, &h.url(fw, &login(&scope(80)))).await;
        let callback = location(&h, authorize.as_str()).await;
        assert_eq!(h.idp.hits(Endpoint::Authorize), hits + 1);
        let state = query_param(&callback, "state").unwrap_or_default();
        let code = query_param(&callback, "code").unwrap_or_default();
        let reply = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    (
                        "code_verifier",
                        state.rsplit('|').next().unwrap_or_default(),
                    ),
                ],
            )
            .await;
        assert_token_json(&reply);
    }
}

/// D8: ID tokens that are not exactly right end the exchange with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_id_tokens_are_refused() {
    type Tweak = fn(&mut serde_json::Map<String, Value>);
    let cases: [(&str, Tweak); 10] = [
        ("wrong nonce", |c| {
            c.insert("nonce".into(), json!("attacker"));
        }),
        ("no nonce", |c| {
            c.remove("nonce");
        }),
        ("wrong aud", |c| {
            c.insert("aud".into(), json!("another-client"));
        }),
        ("no aud", |c| {
            c.remove("aud");
        }),
        ("untrusted extra aud without azp", |c| {
            c.insert("aud".into(), json!(["test-client", "another"]));
            c.remove("azp");
        }),
        ("azp of another client", |c| {
            c.insert("azp".into(), json!("another-client"));
        }),
        ("wrong iss", |c| {
            c.insert("iss".into(), json!("https://evil.example"));
        }),
        ("no sub", |c| {
            c.remove("sub");
        }),
        ("no iat", |c| {
            c.remove("iat");
        }),
        ("expired", |c| {
            c.insert("exp".into(), json!(1_000_000_000));
        }),
    ];
    let h = harness().await;
    for (case, tweak) in cases {
        h.idp.set_id_token_tweak(Some(Arc::new(tweak)));
        for fw in FRAMEWORKS {
            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            let reply = client_token_call(&h, fw, &callback).await;
            assert_eq!(reply.status, 400, "{case} on {fw:?}: {}", reply.raw_body);
        }
    }
    h.idp.set_id_token_tweak(None);
    let other_key = h.idp.add_key(oidc_auth::testing::SigningAlg::ES256);
    h.idp.retire_key(&other_key);
    h.idp.set_id_token_kid(Some(other_key));
    let (_, callback) = browser_login(&h, Framework::Axum, LOOPBACK).await;
    assert_eq!(
        client_token_call(&h, Framework::Axum, &callback)
            .await
            .status,
        400,
        "unpublished key"
    );
    h.idp.set_id_token_kid(None);
    h.idp.set_token_response_tweak(Some(Arc::new(|answer| {
        answer.insert(
            "id_token".into(),
            json!("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."),
        );
    })));
    let (_, callback) = browser_login(&h, Framework::Actix, LOOPBACK).await;
    assert_eq!(
        client_token_call(&h, Framework::Actix, &callback)
            .await
            .status,
        400,
        "alg none"
    );
    assert_eq!(h.idp.hits(Endpoint::Userinfo), 0);
}

/// G7: the provider's token endpoint is down at the exchange: 502/503, nothing partial, and the
/// transaction is consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_token_endpoint_down_is_a_gateway_error() {
    let h = harness().await;
    for (fault, expected) in [
        (Fault::Down, 503),
        (Fault::Status(500), 502),
        (Fault::Garbage, 502),
    ] {
        for fw in FRAMEWORKS {
            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            h.idp.set_fault(Endpoint::Token, fault.clone());
            let reply = client_token_call(&h, fw, &callback).await;
            assert_eq!(reply.status, expected, "{fault:?}");
            assert!(reply.body.get("access_token").is_none());
            h.idp.set_fault(Endpoint::Token, Fault::None);
            assert_eq!(
                client_token_call(&h, fw, &callback).await.status,
                400,
                "consumed"
            );
        }
    }
}

/// Bounded everything: a provider token answer over 64 KiB is not read to its end: 502 on
/// both frameworks, no token, and the next login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_token_answer_over_64_kib_is_a_gateway_error() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let huge = json!({
            "access_token": "a",
            "token_type": "Bearer",
            "padding": "x".repeat(70 * 1024),
        });
        h.idp.set_fault(Endpoint::Token, Fault::Json(200, huge));
        let reply = client_token_call(&h, fw, &callback).await;
        assert_eq!(reply.status, 502, "{fw:?}: {}", reply.raw_body);
        assert!(reply.body.get("access_token").is_none());
        h.idp.set_fault(Endpoint::Token, Fault::None);
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        assert_token_json(&client_token_call(&h, fw, &callback).await);
    }
}

/// The refresh token of a login on `fw`, as the client gets it.
async fn signed_in_refresh_token(h: &Harness, fw: Framework) -> String {
    let (_, callback) = browser_login(h, fw, LOOPBACK).await;
    let first = client_token_call(h, fw, &callback).await;
    first.body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Refresh with the client's hyphenated `refresh-token` field and the standard spelling; the
/// provider rotates, and a spent token is `invalid_grant` (E2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_accepts_both_spellings_and_reports_invalid_grant() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let refresh = signed_in_refresh_token(&h, fw).await;
        let hyphen = h
            .post_form(fw, "/api/auth/v2/token", &[("refresh-token", &refresh)])
            .await;
        assert_token_json(&hyphen);
        let next = hyphen.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let underscore = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &next)],
            )
            .await;
        assert_token_json(&underscore);
        let spent = h
            .post_form(fw, "/api/auth/v2/token", &[("refresh-token", &refresh)])
            .await;
        assert_eq!((spent.status, spent.error()), (400, Some("invalid_grant")));
    }
}

/// E1 without broker mode: two requests refreshing with the same provider refresh token at
/// once (two tabs, or a client retrying a refresh it gave up on) make one provider refresh and
/// both get its answer, instead of the second being taken by a rotating provider for a replay,
/// which ends the whole grant at many providers. Once the answer is in, the token is the
/// provider's to judge again: a later replay is `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_concurrent_refreshes_with_one_token_make_one_provider_refresh() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let refresh = signed_in_refresh_token(&h, fw).await;
        let form = [("refresh-token", refresh.as_str())];
        h.idp.set_fault(
            Endpoint::Token,
            Fault::Slow(std::time::Duration::from_millis(500)),
        );
        let calls = h.idp.hits(Endpoint::Token);
        let (one, other) = tokio::join!(h.post_form(fw, "/api/auth/v2/token", &form), async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            h.post_form(fw, "/api/auth/v2/token", &form).await
        });
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_token_json(&one);
        assert_token_json(&other);
        assert_eq!(h.idp.hits(Endpoint::Token), calls + 1, "{fw:?}");
        assert_eq!(one.body["refresh_token"], other.body["refresh_token"]);
        let replay = h.post_form(fw, "/api/auth/v2/token", &form).await;
        assert_eq!(
            (replay.status, replay.error()),
            (400, Some("invalid_grant")),
            "{fw:?}"
        );
    }
}

/// A provider that does not rotate refresh tokens answers a refresh without one (RFC 6749
/// section 6): the client is given back the refresh token it sent, with a lifetime ahead, not
/// an empty one that would end its session at the next expiry of its access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_clients_one() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let first = client_token_call(&h, fw, &callback).await;
        let held = first.body["refresh_token"].as_str().unwrap_or_default();
        assert!(!held.is_empty(), "{fw:?}: {}", first.raw_body);
        h.idp
            .set_token_response_tweak(Some(Arc::new(|answer: &mut Map<String, Value>| {
                answer.remove("refresh_token");
                answer.remove("refresh_expires_in");
            })));
        let refreshed = h
            .post_form(fw, "/api/auth/v2/token", &[("refresh-token", held)])
            .await;
        h.idp.set_token_response_tweak(None);
        assert_token_json(&refreshed);
        assert_eq!(refreshed.body["refresh_token"], held, "{fw:?}");
        let expires = refreshed.body["refresh_expires"].as_i64().unwrap_or(0);
        assert!(expires > SystemClock.now() + 3600, "{fw:?}: {expires}");
    }
}

/// Keycloak's `refresh_expires_in: 0` means "no stated expiry", not "expired now".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_refresh_lifetime_is_not_expired() {
    let h = harness().await;
    h.idp.set_refresh_expires_in(0);
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let reply = client_token_call(&h, fw, &callback).await;
        let expires = reply.body["refresh_expires"].as_i64().unwrap_or(0);
        assert!(expires > SystemClock.now() + 86_400, "{fw:?}: {expires}");
    }
}

/// The device flow as the client runs it: start, poll with `device-code` (pending at top level),
/// approval gives Token JSON; denial and expiry stop it with their codes at top level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_reports_polling_errors_at_top_level() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        for outcome in ["approve", "deny"] {
            let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            assert_eq!(start.status, 200, "{}", start.raw_body);
            start.assert_not_cached();
            for field in [
                "device_code",
                "user_code",
                "verification_uri",
                "verification_uri_complete",
                "expires_in",
                "interval",
            ] {
                assert!(start.body.get(field).is_some(), "{field}");
            }
            let device_code = start.body["device_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let user_code = start.body["user_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let pending = h
                .post_form(fw, "/api/auth/v2/token", &[("device-code", &device_code)])
                .await;
            assert_eq!(
                (pending.status, pending.error()),
                (400, Some("authorization_pending"))
            );
            if outcome == "approve" {
                assert!(h.idp.approve_device(&user_code));
                assert_token_json(
                    &h.post_form(fw, "/api/auth/v2/token", &[("device-code", &device_code)])
                        .await,
                );
            } else {
                assert!(h.idp.deny_device(&user_code));
                let denied = h
                    .post_form(fw, "/api/auth/v2/token", &[("device_code", &device_code)])
                    .await;
                assert_eq!(
                    (denied.status, denied.error()),
                    (400, Some("access_denied"))
                );
            }
        }
    }
    // A device code past its `expires_in` (1 s, the shortest a provider may state).
    h.idp.set_device_expires_in(1);
    let mut started = Vec::new();
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let device_code = start.body["device_code"].as_str().unwrap_or_default();
        started.push((fw, device_code.to_owned()));
    }
    h.idp.set_device_expires_in(600);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for (fw, device_code) in started {
        let expired = h
            .post_form(fw, "/api/auth/v2/token", &[("device-code", &device_code)])
            .await;
        assert_eq!(expired.error(), Some("expired_token"), "{fw:?}");
    }
}

/// Configured scopes without `openid` still ask for an ID token on the device flow, as they do
/// at login: the provider's grant names `openid` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_flow_asks_for_openid_like_the_login() {
    let h = Harness::with(
        flow_provider().await,
        |b| b.client_id("test-client").scopes("profile email"),
        None,
    )
    .await;
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let device_code = start.body["device_code"].as_str().unwrap_or_default();
        let user_code = start.body["user_code"].as_str().unwrap_or_default();
        assert!(h.idp.approve_device(user_code));
        let token = h
            .post_form(fw, "/api/auth/v2/token", &[("device-code", device_code)])
            .await;
        assert_token_json(&token);
        let granted: Vec<&str> = token.body["scope"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .collect();
        assert_eq!(granted, ["openid", "profile", "email"], "{fw:?}");
    }
}

/// E4, the server's half (the device client is py-oidc-auth-client): the device answer always
/// states an `interval`, the provider's when it is a positive number of seconds, else RFC 8628's
/// default of 5 s, so a client never has to guess one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e4_the_device_answer_always_states_an_interval() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        for (provider, expected) in [(None, 5), (Some(0), 5), (Some(1), 1), (Some(7), 7)] {
            h.idp.set_device_interval(provider);
            let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            assert_eq!(start.status, 200, "{}", start.raw_body);
            assert_eq!(
                start.body["interval"], expected,
                "provider interval {provider:?}: {}",
                start.raw_body
            );
        }
    }
}

/// E5, the server's half without broker mode: the provider paces the polls, and its
/// `slow_down` reaches the client as is (400 `slow_down` at top level), poll after poll, each
/// forwarded to the provider; the client (py-oidc-auth-client) then widens its gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_the_providers_slow_down_reaches_the_client() {
    let h = harness().await;
    h.idp.set_device_interval(Some(5));
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        let device_code = oidc_auth_tests::broker::field(&start, "device_code").to_owned();
        let polls = h.idp.hits(Endpoint::Token);
        for _ in 0..2 {
            let early = h
                .post_form(fw, "/api/auth/v2/token", &[("device-code", &device_code)])
                .await;
            assert_eq!(
                (early.status, early.error()),
                (400, Some("slow_down")),
                "{fw:?}: {}",
                early.raw_body
            );
        }
        assert_eq!(h.idp.hits(Endpoint::Token), polls + 2, "{fw:?}");
    }
}

/// The client falls back to the browser flow only on 503: a provider without a device endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_start_is_503_without_a_provider_device_endpoint() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_device_enabled(false);
    let h = Harness::with(idp, |b| b, None).await;
    for fw in FRAMEWORKS {
        assert_eq!(
            h.post_form(fw, "/api/auth/v2/device", &[]).await.status,
            503
        );
    }
}

/// A provider that lists a device endpoint but refuses the device flow to this client (Keycloak
/// does so for a client without the grant, with `unauthorized_client`): 503 too, so that the
/// client falls back to the browser flow instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_start_is_503_when_the_provider_refuses_it_to_this_client() {
    let h = harness().await;
    for code in [
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_client",
        "invalid_request",
    ] {
        h.idp
            .set_fault(Endpoint::Device, Fault::Json(400, json!({"error": code})));
        for fw in FRAMEWORKS {
            let before = h.idp.hits(Endpoint::Device);
            let reply = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            assert_eq!(reply.status, 503, "{code} {fw:?}: {}", reply.raw_body);
            assert_eq!(reply.body["error"], "temporarily_unavailable", "{code}");
            assert_eq!(h.idp.hits(Endpoint::Device), before + 1, "{code} {fw:?}");
        }
    }
    // A provider answering garbage is 503 too (`provider_answers` has the other broken
    // answers), and a working one 200.
    h.idp.set_fault(Endpoint::Device, Fault::Garbage);
    for fw in FRAMEWORKS {
        assert_eq!(
            h.post_form(fw, "/api/auth/v2/device", &[]).await.status,
            503
        );
    }
    h.idp.set_fault(Endpoint::Device, Fault::None);
    for fw in FRAMEWORKS {
        assert_eq!(
            h.post_form(fw, "/api/auth/v2/device", &[]).await.status,
            200
        );
    }
}

/// Userinfo: the bearer token's user, normalised without losing multi-word names; another
/// subject at the provider is refused (D9); no token is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_is_normalised_and_bound_to_the_token_subject() {
    let h = harness().await;
    let (_, callback) = browser_login(&h, Framework::Axum, LOOPBACK).await;
    let access = client_token_call(&h, Framework::Axum, &callback).await.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for fw in FRAMEWORKS {
        let reply = h.bearer(fw, "/api/auth/v2/userinfo", &access).await;
        assert_eq!(reply.status, 200, "{}", reply.raw_body);
        assert_eq!(reply.body["username"], "alice");
        assert_eq!(reply.body["pw_name"], "alice");
        assert_eq!(reply.body["first_name"], "Alice");
        assert_eq!(reply.body["last_name"], "van der Berg");
        assert_eq!(reply.body["email"], "alice@example.com");
        assert_eq!(h.get(fw, "/api/auth/v2/userinfo", None).await.status, 401);
    }
    h.idp.set_userinfo_override(Some(
        json!({"sub": "mallory", "preferred_username": "mallory"}),
    ));
    for fw in FRAMEWORKS {
        assert_eq!(
            h.bearer(fw, "/api/auth/v2/userinfo", &access).await.status,
            400
        );
    }
}

const REVOKE: &str = "/api/auth/v2/revoke";

/// Revocation without broker mode (RFC 7009): the client holds the provider's refresh token,
/// and our endpoint has the provider revoke it with this server's client authentication and the
/// client's hint, on both frameworks; the token then no longer refreshes. A provider refusal
/// keeps its code, an unreachable provider is 503 with Retry-After, and no token is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_without_broker_mode_goes_to_the_provider() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let tokens = oidc_auth_tests::client_code_flow(&h, fw).await;
        assert_eq!(tokens.status, 200, "{}", tokens.raw_body);
        let refresh_token = tokens.body["refresh_token"].as_str().unwrap_or_default();
        let form = [
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ];
        let revoked = h.post_form(fw, REVOKE, &form).await;
        assert_eq!((revoked.status, &revoked.body), (200, &json!({})), "{fw:?}");
        let sent = h
            .idp
            .last_revocation_request()
            .expect("the provider was asked");
        assert_eq!(sent["token"], refresh_token);
        assert_eq!(sent["token_type_hint"], "refresh_token");
        assert_eq!(sent["client_id"], "test-client");
        let refreshed = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[("refresh-token", refresh_token)],
            )
            .await;
        assert_eq!(
            (refreshed.status, refreshed.error()),
            (400, Some("invalid_grant"))
        );
        assert!(!revoked.raw_body.contains(refresh_token));

        h.idp.set_fault(Endpoint::Revocation, Fault::Status(400));
        let refused = h.post_form(fw, REVOKE, &[("token", "t")]).await;
        assert_eq!((refused.status, refused.error()), (400, Some("mock_fault")));
        h.idp.set_fault(Endpoint::Revocation, Fault::Down);
        let down = h.post_form(fw, REVOKE, &[("token", "t")]).await;
        assert_eq!(down.status, 503, "{fw:?}: {}", down.raw_body);
        assert!(down.retry_after.is_some());
        h.idp.set_fault(Endpoint::Revocation, Fault::None);
        let none = h
            .post_form(fw, REVOKE, &[("token_type_hint", "refresh_token")])
            .await;
        assert_eq!((none.status, none.error()), (400, Some("invalid_request")));
    }
}

/// A provider whose discovery document names no revocation endpoint: 400
/// `unsupported_token_type`, and nothing is sent anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_without_a_provider_endpoint_is_unsupported() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_revocation_enabled(false);
    let h = Harness::with(idp, |b| b, None).await;
    for fw in FRAMEWORKS {
        let reply = h.post_form(fw, REVOKE, &[("token", "t")]).await;
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("unsupported_token_type")),
            "{fw:?}"
        );
    }
    assert_eq!(h.idp.hits(Endpoint::Revocation), 0);
}

/// Lines anyone can have written once per request are paced: a provider that refuses the
/// device flow to this client answers every `POST /device` so, and a bogus device code or
/// refresh token gets a refusal without an error code from a broken gateway. Of ten such
/// requests, at most one is logged at WARN (none when another test logged it within the last
/// ten seconds); the others are at DEBUG, so nothing is lost to whoever wants them.
#[tokio::test]
async fn refusals_anyone_can_cause_are_logged_at_warn_at_most_once_in_ten_seconds() {
    let (logs, _guard) = oidc_auth_tests::logs::capture_logs(tracing::Level::DEBUG);
    let idp = flow_provider().await;
    let auth = OidcAuth::new(base_config(&idp).build().expect("config"));
    let cases = [
        (
            Endpoint::Device,
            json!({"error": "unauthorized_client"}),
            "refused to start a device authorization",
        ),
        (
            Endpoint::Token,
            json!({"message": "bad gateway"}),
            "refused a request without an error code",
        ),
    ];
    for (endpoint, body, line) in cases {
        idp.set_fault(endpoint, Fault::Json(400, body));
        for _ in 0..10 {
            let refused = match endpoint {
                Endpoint::Device => auth.device_endpoint().await,
                _ => auth.token_endpoint(b"device-code=bogus").await,
            };
            assert!(refused.is_err(), "{line}");
        }
        assert!(logs.warnings(line) <= 1, "{}", logs.text());
        assert_eq!(
            logs.warnings(line) + logs.count("DEBUG", line),
            10,
            "{}",
            logs.text()
        );
    }
}
