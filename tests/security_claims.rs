//! SECURITY.md groups B (registered claims) and C (scopes and claim constraints), end to end on
//! both frameworks. The clock is injected so boundaries are exact.

use std::time::Duration;

use oidc_auth::testing::{Endpoint, MockProvider, TokenBuilder};
use oidc_auth::{Clock, ManualClock, SystemClock};
use oidc_auth_tests::{AUDIENCE, FRAMEWORKS, Harness, LOOPBACK, assert_invalid_token};
use serde_json::{Value, json};

const LEEWAY: i64 = 60;

/// A harness whose validation clock stands still at the current time, with a 60 s leeway.
async fn fixed_clock(leeway: i64) -> (Harness, i64) {
    let now = SystemClock.now();
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(
        idp,
        |b| b.leeway(Duration::from_secs(leeway as u64)),
        Some(ManualClock::new(now)),
    )
    .await;
    (h, now)
}

fn token(h: &Harness) -> TokenBuilder {
    h.idp.token().audience(AUDIENCE)
}

async fn status(h: &Harness, path: &str, token: &str) -> u16 {
    h.bearer_both(path, token).await.status
}

/// B1: `exp` missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_token_without_exp_is_refused() {
    let h = Harness::start().await;
    assert_invalid_token(
        &h.bearer_both("/me", &token(&h).remove_claim("exp").sign())
            .await,
    );
}

/// B2: `exp` and `nbf` of the wrong JSON type or out of range (CVE-2026-25537 class).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_exp_and_nbf_of_the_wrong_type_or_range_are_refused() {
    let h = Harness::start().await;
    let bad = [
        json!("never"),
        json!("99999999999"),
        json!(true),
        json!(null),
        json!(-1),
        json!(9_007_199_254_740_993_i64),
        json!(1e300),
        json!([2_000_000_000]),
        json!({"t": 2_000_000_000}),
    ];
    for value in bad {
        let t = token(&h).claim("exp", value.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
        let t = token(&h).claim("nbf", value.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
        let t = token(&h).claim("iat", value.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
}

/// B3: expired exactly now with no leeway, or one second beyond the leeway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_expiry_at_the_boundary_is_refused() {
    let (strict, now) = fixed_clock(0).await;
    let at_now = token(&strict)
        .issued_at(now - 100)
        .claim("exp", json!(now))
        .sign();
    assert_invalid_token(&strict.bearer_both("/me", &at_now).await);
    let (h, now) = fixed_clock(LEEWAY).await;
    let beyond = token(&h)
        .issued_at(now - 1000)
        .claim("exp", json!(now - LEEWAY - 1))
        .sign();
    assert_invalid_token(&h.bearer_both("/me", &beyond).await);
}

/// B4: expired, but within the leeway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b4_expiry_within_the_leeway_is_accepted() {
    let (h, now) = fixed_clock(LEEWAY).await;
    let within = token(&h)
        .issued_at(now - 1000)
        .claim("exp", json!(now - LEEWAY + 1))
        .sign();
    assert_eq!(status(&h, "/me", &within).await, 200);
}

/// B5: `nbf` just beyond and just within the leeway; `iat` far in the future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b5_nbf_and_iat_respect_the_leeway() {
    let (h, now) = fixed_clock(LEEWAY).await;
    let late = token(&h)
        .issued_at(now)
        .claim("nbf", json!(now + LEEWAY + 1))
        .sign();
    assert_invalid_token(&h.bearer_both("/me", &late).await);
    let soon = token(&h)
        .issued_at(now)
        .claim("nbf", json!(now + LEEWAY - 1))
        .sign();
    assert_eq!(status(&h, "/me", &soon).await, 200);
    let future = token(&h).issued_at(now + 86_400).sign();
    assert_invalid_token(&h.bearer_both("/me", &future).await);
}

/// B6: the issuer must match exactly: trailing slash, case, array, missing, other types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b6_issuer_must_match_exactly() {
    let h = Harness::start().await;
    let iss = h.idp.issuer();
    let variants = [
        json!(format!("{iss}/")),
        json!(iss.to_uppercase()),
        json!(iss.replace("127.0.0.1", "localhost")),
        json!(iss.replace("http://", "https://")),
        json!([iss.clone()]),
        json!(null),
        json!(1),
        json!(format!(" {iss}")),
    ];
    for value in variants {
        let t = token(&h).claim("iss", value.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
    let t = token(&h).remove_claim("iss").sign();
    assert_invalid_token(&h.bearer_both("/me", &t).await);
    assert_eq!(
        h.idp.hits(Endpoint::Jwks),
        0,
        "a wrong issuer never fetches keys"
    );
}

/// B7: the audience must contain the configured value exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b7_wrong_or_malformed_audience_is_refused() {
    let h = Harness::start().await;
    for aud in [
        json!("wrong"),
        json!("api-admin"),
        json!("API"),
        json!([]),
        json!(1),
        json!(["api-admin"]),
        json!([1, "x"]),
        json!({"aud": "api"}),
    ] {
        let t = h.idp.token().claim("aud", aud.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
    assert_invalid_token(&h.bearer_both("/me", &h.idp.token().sign()).await);
}

/// B8: an access token with several audiences including ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b8_extra_audiences_are_accepted_for_access_tokens() {
    let h = Harness::start().await;
    let t = h
        .idp
        .token()
        .claim("aud", json!(["other", AUDIENCE]))
        .sign();
    assert_eq!(status(&h, "/me", &t).await, 200);
}

/// B10: a logout token (or any non-access-token `typ`) sent as a bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_logout_and_other_token_types_are_refused() {
    let h = Harness::start().await;
    for typ in [
        "logout+jwt",
        "secevent+jwt",
        "id_token+jwt",
        "JWE",
        "application/logout+jwt",
    ] {
        let t = token(&h).header("typ", json!(typ)).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
    for typ in ["JWT", "at+jwt", "application/at+jwt"] {
        let t = token(&h).header("typ", json!(typ)).sign();
        assert_eq!(status(&h, "/me", &t).await, 200, "{typ}");
    }
    let t = token(&h).header("typ", json!(1)).sign();
    assert_invalid_token(&h.bearer_both("/me", &t).await);
    // A back-channel logout token need not be typed: untyped or typed `JWT`, its `events`
    // claim still marks it, and it is refused.
    let logout = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let untyped = token(&h)
        .remove_header("typ")
        .claim("events", logout.clone())
        .sign();
    let typed_jwt = token(&h)
        .header("typ", json!("JWT"))
        .claim("events", logout)
        .sign();
    for t in [untyped, typed_jwt] {
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
}

/// B10 where the configured audience is the client id, as is usual with Keycloak (an audience
/// mapper puts the API's client id in its access tokens): the provider's ID tokens then carry
/// that audience too. One sent as a bearer token is refused, told apart by `at_hash` or `c_hash`
/// (ID-token claims only) or by Keycloak's `typ` claim `ID`; its access tokens (`typ`
/// `Bearer`) pass. The ID token the login hands out, with `at_hash` as Keycloak and others
/// set it, is refused too, on the route and as a token exchange's subject would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_id_tokens_are_refused_where_the_audience_is_the_client_id() {
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(idp, |b| b.client_id(AUDIENCE), None).await;
    for (name, value) in [
        ("at_hash", json!("dGhlIGhhc2g")),
        ("c_hash", json!("dGhlIGhhc2g")),
        ("typ", json!("ID")),
    ] {
        let t = token(&h).claim(name, value).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
    let bearer = token(&h).claim("typ", json!("Bearer")).sign();
    assert_eq!(status(&h, "/me", &bearer).await, 200);
    // Where the provider's access tokens are no JWTs (Google's), its ID tokens are what
    // clients send: accepted once the configuration says so.
    let idp = MockProvider::start().await.expect("provider");
    let lenient = Harness::with(idp, |b| b.client_id(AUDIENCE).accept_id_tokens(true), None).await;
    let id_token = token(&lenient)
        .claim("at_hash", json!("dGhlIGhhc2g"))
        .sign();
    assert_eq!(status(&lenient, "/me", &id_token).await, 200);

    h.idp.set_id_token_tweak(Some(std::sync::Arc::new(|claims| {
        claims.insert("at_hash".into(), json!("dGhlIGhhc2g"));
    })));
    for fw in FRAMEWORKS {
        let (_, callback) = oidc_auth_tests::browser_login(&h, fw, LOOPBACK).await;
        let login = oidc_auth_tests::client_token_call(&h, fw, &callback).await;
        let id_token = login.body["id_token"].as_str().unwrap_or_default();
        assert!(!id_token.is_empty(), "{fw:?}: {}", login.raw_body);
        assert_invalid_token(&h.bearer_both("/me", id_token).await);
    }
}

/// B11: `sub` missing, empty or not a string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_subject_must_be_a_non_empty_string() {
    let h = Harness::start().await;
    assert_invalid_token(
        &h.bearer_both("/me", &token(&h).remove_claim("sub").sign())
            .await,
    );
    for sub in [
        json!(""),
        json!(" "),
        json!("\t"),
        json!(1),
        json!(null),
        json!(["alice"]),
        json!({"id": 1}),
    ] {
        let t = token(&h).claim("sub", sub.clone()).sign();
        assert_invalid_token(&h.bearer_both("/me", &t).await);
    }
}

fn admin(h: &Harness, scope: Value) -> String {
    token(h)
        .claim("scope", scope)
        .claim("groups", json!(["admins"]))
        .sign()
}

/// C1: a scope that is not exactly `admin` as a space-separated word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_near_miss_scopes_are_insufficient() {
    let h = Harness::start().await;
    for scope in [
        "administrator",
        "admins",
        "Admin",
        "ADMIN",
        "read\tadmin",
        "read,admin",
        "read\nadmin",
        "admin\u{200b}",
        "",
        " ",
    ] {
        let reply = h.bearer_both("/admin", &admin(&h, json!(scope))).await;
        assert_eq!(reply.status, 403, "{scope:?}");
        assert_eq!(reply.error(), Some("insufficient_scope"));
        assert!(
            reply
                .challenge
                .unwrap_or_default()
                .contains("scope=\"admin\"")
        );
    }
}

/// C2: `admin` among other scopes, and the `scp` claim as a list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_scope_in_a_list_or_scp_is_accepted() {
    let h = Harness::start().await;
    assert_eq!(
        status(&h, "/admin", &admin(&h, json!("read admin"))).await,
        200
    );
    assert_eq!(
        status(&h, "/admin", &admin(&h, json!("  admin  read "))).await,
        200
    );
    let scp = token(&h)
        .claim("scp", json!(["admin"]))
        .claim("groups", json!(["admins"]))
        .sign();
    assert_eq!(status(&h, "/admin", &scp).await, 200);
}

/// C3: `scope` of a type other than a string never grants anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_scope_of_the_wrong_type_is_insufficient() {
    let h = Harness::start().await;
    for scope in [
        json!(["admin"]),
        json!(1),
        json!({"admin": true}),
        json!(true),
        json!(null),
    ] {
        assert_eq!(
            status(&h, "/admin", &admin(&h, scope.clone())).await,
            403,
            "{scope}"
        );
    }
    let scp = token(&h)
        .claim("scp", json!({"admin": 1}))
        .claim("groups", json!(["admins"]))
        .sign();
    assert_eq!(status(&h, "/admin", &scp).await, 403);
}

/// C4: group values that only look like `admins`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_group_lookalikes_are_refused() {
    let h = Harness::start().await;
    let groups = [
        json!("admins,users"),
        json!("admins"),
        json!(["Admins"]),
        json!([["admins"]]),
        json!([1, null]),
        json!({"admins": true}),
        json!(["admins "]),
        json!(true),
    ];
    for value in groups {
        let t = token(&h)
            .scope("admin")
            .claim("groups", value.clone())
            .sign();
        let reply = h.bearer_both("/admin", &t).await;
        assert_eq!(reply.status, 403, "{value}");
        assert_eq!(reply.error(), Some("access_denied"));
    }
}

/// C4's strictness explained: a required claim that is a plain string (`"hd": "example.com"`)
/// matches nothing unless `string_claims_as_lists` is set, and the 403 body cannot say why
/// without echoing a claim. So a denial that the setting would have let through logs the
/// claim's name with the setting to use (at WARN the first time in a process, at DEBUG after),
/// never the value; the same token passes with the setting on. Another string gets no hint.
/// Route policies and configured constraints alike.
#[tokio::test]
async fn a_string_claim_refused_by_default_is_explained_in_the_log() {
    use oidc_auth::{ClaimRule, ClaimValue, IdToken, OidcAuth, Policy};
    struct DomainPolicy;
    impl Policy for DomainPolicy {
        const SCOPES: &'static [&'static str] = &[];
        const CLAIMS: &'static [ClaimRule] =
            &[ClaimRule::new("hd", &[ClaimValue::Str("example.com")])];
    }
    struct Anyone;
    impl Policy for Anyone {
        const SCOPES: &'static [&'static str] = &[];
        const CLAIMS: &'static [ClaimRule] = &[];
    }
    let (logs, _guard) = oidc_auth_tests::logs::capture_logs(tracing::Level::DEBUG);
    let idp = MockProvider::start().await.expect("provider");
    let token = IdToken::from_claims(json!({
        "sub": "alice", "iss": idp.issuer(), "exp": i64::MAX / 2, "hd": "example.com", "tenant": "acme"
    }))
        .expect("claims");
    let strict = OidcAuth::new(oidc_auth_tests::base_config(&idp).build().expect("config"));
    // A string that the setting would not let through either gets no hint.
    let other = IdToken::from_claims(json!({
        "sub": "mallory", "iss": idp.issuer(), "exp": i64::MAX / 2, "hd": "other.example"
    }))
    .expect("claims");
    assert_eq!(
        strict
            .check::<DomainPolicy>(&other)
            .expect_err("another domain")
            .status(),
        403
    );
    assert!(
        !logs.text().contains("OIDC_STRING_CLAIMS_AS_LISTS"),
        "{}",
        logs.text()
    );
    let refused = strict
        .check::<DomainPolicy>(&token)
        .expect_err("a string is not a list");
    assert_eq!(refused.status(), 403);
    let lenient = OidcAuth::new(
        oidc_auth_tests::base_config(&idp)
            .string_claims_as_lists(true)
            .build()
            .expect("config"),
    );
    assert!(lenient.check::<DomainPolicy>(&token).is_ok());
    let constrained = OidcAuth::new(
        oidc_auth_tests::base_config(&idp)
            .claims([oidc_auth::ClaimConstraint::new("tenant", ["acme"])])
            .build()
            .expect("config"),
    );
    assert_eq!(
        constrained
            .check::<Anyone>(&token)
            .expect_err("a string is not a list")
            .status(),
        403
    );
    let text = logs.text();
    for claim in ["claim=\"hd\"", "claim=\"tenant\""] {
        assert!(
            text.lines()
                .any(|line| line.contains(claim) && line.contains("OIDC_STRING_CLAIMS_AS_LISTS")),
            "{claim}: {text}"
        );
    }
    assert!(
        !text.contains("example.com") && !text.contains("acme"),
        "{text}"
    );
}

/// C5: `email_verified` as a string, and look-alike values of string claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_typed_and_lookalike_claim_values_are_refused() {
    let h = Harness::start().await;
    for value in [
        json!("true"),
        json!(1),
        json!("1"),
        json!(null),
        json!(false),
    ] {
        let t = token(&h).claim("email_verified", value.clone()).sign();
        assert_eq!(status(&h, "/verified", &t).await, 403, "{value}");
    }
    let ok = token(&h).claim("email_verified", json!(true)).sign();
    assert_eq!(status(&h, "/verified", &ok).await, 200);
    for value in ["ops ", "\u{43e}ps", "OPS", "op"] {
        let t = token(&h)
            .claim("realm_access", json!({"roles": [value]}))
            .sign();
        assert_eq!(status(&h, "/ops", &t).await, 403, "{value:?}");
    }
}

/// C6: no `Authorization` header, or another scheme (however long its credentials): 401 with a
/// bare challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_no_bearer_token_gets_a_bare_challenge() {
    let h = Harness::start().await;
    // Longer than a bearer token may be: still another scheme's credentials, not a token.
    let long_basic = format!("Basic {}", "YWxpY2U6".repeat(1200));
    for fw in FRAMEWORKS {
        for header in [
            None,
            Some("Basic YWxpY2U6c2VjcmV0"),
            Some("Negotiate abc"),
            Some("Token abc"),
            Some(long_basic.as_str()),
        ] {
            let reply = h.get(fw, "/admin", header).await;
            assert_eq!(reply.status, 401);
            assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{header:?}");
        }
    }
}

/// C6 with a realm configured: the bare challenge names only the realm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_bare_challenge_carries_the_configured_realm() {
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(idp, |b| b.realm("api"), None).await;
    for fw in FRAMEWORKS {
        let reply = h.get(fw, "/me", None).await;
        assert_eq!(reply.challenge.as_deref(), Some("Bearer realm=\"api\""));
    }
}

/// C8: a token in the query string is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c8_query_string_token_is_ignored() {
    let h = Harness::start().await;
    let t = token(&h).sign();
    for fw in FRAMEWORKS {
        let reply = h.get(fw, &format!("/me?access_token={t}"), None).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.challenge.as_deref(), Some("Bearer"));
    }
}
