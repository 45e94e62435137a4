//! Variants of SECURITY.md cases at the auth endpoints beyond the listed examples, on both
//! frameworks: bearer refusals at `/api/auth/v2/userinfo` (groups A-C), the RFC 9207 `iss`
//! check of the server-side callback when the provider does not advertise it (D4), and logout
//! redirects when the provider has no end-session endpoint (D13).

use std::sync::Arc;

use oidc_auth::testing::{Endpoint, MockProvider};
use oidc_auth_tests::jose::{b64, unb64};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, Reply, assert_invalid_token, assert_not_echoed,
    browser_login, flow_provider, query_param,
};
use serde_json::{Map, Value, json};

const USERINFO: &str = "/api/auth/v2/userinfo";

/// The path of the server-side callback `callback` points at, with `iss` set to `iss` (or
/// removed for `None`) and every other parameter kept.
fn callback_path(callback: &url::Url, iss: Option<&str>) -> String {
    let mut query: Vec<(String, String)> = callback
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some(iss) = iss {
        query.push(("iss".to_owned(), iss.to_owned()));
    }
    format!(
        "{}?{}",
        callback.path(),
        serde_urlencoded::to_string(query).unwrap_or_default()
    )
}

/// The logout path with `post_logout_redirect_uri` set to `uri`.
fn logout_path(uri: &str) -> String {
    format!(
        "/api/auth/v2/logout?{}",
        serde_urlencoded::to_string([("post_logout_redirect_uri", uri)]).unwrap_or_default()
    )
}

/// `token` with its signature changed: the last byte of the decoded signature flipped.
fn forged_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("a compact JWS");
    let mut signature = unb64(signature);
    if let Some(last) = signature.last_mut() {
        *last ^= 0x01;
    }
    format!("{input}.{}", b64(signature))
}

/// `token`'s claims under an `alg: none` header (with the provider's kid) and no signature.
fn alg_none(token: &str, kid: &str) -> String {
    let payload = token.split('.').nth(1).expect("a payload segment");
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string();
    format!("{}.{payload}.", b64(header))
}

/// GET userinfo on `fw` with this raw `Authorization` value; asserts the provider's userinfo
/// endpoint was not called for it.
async fn userinfo_without_provider(
    h: &Harness,
    fw: Framework,
    authorization: Option<&str>,
    case: &str,
) -> Reply {
    let calls = h.idp.hits(Endpoint::Userinfo);
    let reply = h.get(fw, USERINFO, authorization).await;
    assert_eq!(
        h.idp.hits(Endpoint::Userinfo),
        calls,
        "{fw:?} {case}: the provider's userinfo endpoint was called: {}",
        reply.raw_body
    );
    reply
}

/// A1, A19, A22/B6 and C6 variants at userinfo rather than a protected route: an `alg: none`
/// token (A1), a token whose signature was changed (A19), a token of an untrusted issuer (A22/B6:
/// another provider's, and one signed by the trusted key but naming another `iss`) are each 401
/// `invalid_token`; no `Authorization` header and `Basic` credentials (C6) are 401 with the bare
/// `Bearer` challenge. None of them reaches the provider's userinfo endpoint, and none is echoed.
/// A valid token, as the control, does reach it and is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_refuses_bad_bearer_credentials_without_asking_the_provider() {
    let h = Harness::with(flow_provider().await, |b| b, None).await;
    let other = MockProvider::start().await.expect("a second provider");
    let valid = h.idp.token().audience(AUDIENCE).sign();
    let invalid = [
        ("forged signature", forged_signature(&valid)),
        ("alg none", alg_none(&valid, &h.idp.current_kid())),
        (
            "another provider's token",
            other.token().audience(AUDIENCE).sign(),
        ),
        (
            "trusted key, untrusted iss",
            h.idp
                .token()
                .audience(AUDIENCE)
                .claim("iss", json!("https://evil.example"))
                .sign(),
        ),
    ];
    for fw in FRAMEWORKS {
        for (case, token) in &invalid {
            let reply =
                userinfo_without_provider(&h, fw, Some(&format!("Bearer {token}")), case).await;
            assert_invalid_token(&reply);
            assert_not_echoed(&reply, token, &[]);
        }
        for (case, authorization) in [
            ("no Authorization header", None),
            ("Basic credentials", Some("Basic YWxpY2U6c2VjcmV0")),
        ] {
            let reply = userinfo_without_provider(&h, fw, authorization, case).await;
            assert_eq!(reply.status, 401, "{fw:?} {case}: {}", reply.raw_body);
            assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{fw:?} {case}");
        }
        let calls = h.idp.hits(Endpoint::Userinfo);
        let control = h.bearer(fw, USERINFO, &valid).await;
        assert_eq!(control.status, 200, "{fw:?}: {}", control.raw_body);
        assert_eq!(h.idp.hits(Endpoint::Userinfo), calls + 1, "{fw:?}");
    }
    assert_eq!(other.hits(Endpoint::Userinfo), 0);
}

/// C4 variant at userinfo (a claim constraint not met): with the constraint `tenant` in
/// `["acme"]` configured, a valid token with `tenant: ["other"]` is 403, not echoed, and the
/// provider's userinfo endpoint is not called; the same token with `tenant: ["acme"]` is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_refuses_a_failed_claim_constraint_without_asking_the_provider() {
    let h = Harness::with(
        flow_provider().await,
        |b| b.claims([oidc_auth::ClaimConstraint::new("tenant", ["acme"])]),
        None,
    )
    .await;
    let token = |tenant: &str| {
        h.idp
            .token()
            .audience(AUDIENCE)
            .claim("tenant", json!([tenant]))
            .sign()
    };
    let refused = token("other");
    let allowed = token("acme");
    for fw in FRAMEWORKS {
        let reply =
            userinfo_without_provider(&h, fw, Some(&format!("Bearer {refused}")), "tenant other")
                .await;
        assert_eq!(reply.status, 403, "{fw:?}: {}", reply.raw_body);
        assert_not_echoed(&reply, &refused, &[]);
        let reply = h.bearer(fw, USERINFO, &allowed).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
    }
}

/// D4 variant: the provider does not advertise RFC 9207 `iss`
/// (`authorization_response_iss_parameter_supported: false`) and sends none. At the server-side
/// callback an `iss` that is present must still be the provider's: another issuer, or the issuer
/// with a trailing slash, is 400 with no token request, and spends nothing: the same callback
/// without `iss` then completes (200). (An empty `iss=` counts as omitted, RFC 6749 section 3.1,
/// so it is no wrong issuer here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_variant_a_wrong_iss_is_refused_when_the_provider_does_not_advertise_it() {
    let idp = flow_provider().await;
    idp.set_iss_in_authorization_response(false);
    let h = Harness::with(idp, |b| b, None).await;
    let wrong_issuer = format!("{}/", h.idp.issuer());
    for fw in FRAMEWORKS {
        let server_callback = h.url(fw, "/api/auth/v2/callback");
        let (_, callback) = browser_login(&h, fw, &server_callback).await;
        assert_eq!(query_param(&callback, "iss"), None, "{fw:?}: {callback}");
        let exchanges = h.idp.hits(Endpoint::Token);
        for iss in ["https://evil.example", wrong_issuer.as_str()] {
            let reply = h.get(fw, &callback_path(&callback, Some(iss)), None).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "{fw:?} iss {iss:?}: {}",
                reply.raw_body
            );
            assert!(reply.body.get("access_token").is_none(), "{fw:?} {iss:?}");
        }
        assert_eq!(
            h.idp.hits(Endpoint::Token),
            exchanges,
            "{fw:?}: no token request"
        );
        let reply = h.get(fw, &callback_path(&callback, None), None).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert!(reply.body["access_token"].is_string(), "{fw:?}");
        assert_eq!(h.idp.hits(Endpoint::Token), exchanges + 1, "{fw:?}");
    }
}

/// D13 variant: the provider has no `end_session_endpoint`. Logout with the allow-listed
/// `post_logout_redirect_uri` redirects (302) to exactly that URI; a near miss (trailing slash,
/// another case in the path, an extra query, another or no port, another scheme) is 400 with no
/// redirect; no parameter is 200 `{"detail": "Logged out"}`. The provider is never called at
/// its (unadvertised) end-session path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d13_variant_logout_without_an_end_session_endpoint() {
    const ALLOWED: &str = "https://app.example.com:8443/signed-out";
    let idp = flow_provider().await;
    idp.set_discovery_tweak(Some(Arc::new(|doc: &mut Map<String, Value>| {
        doc.remove("end_session_endpoint");
    })));
    let h = Harness::with(idp, |b| b.logout_redirect_uris([ALLOWED.to_owned()]), None).await;
    for fw in FRAMEWORKS {
        let reply = h.get(fw, &logout_path(ALLOWED), None).await;
        assert_eq!(reply.status, 302, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.location.as_deref(), Some(ALLOWED), "{fw:?}");
        for near_miss in [
            "https://app.example.com:8443/signed-out/",
            "https://app.example.com:8443/Signed-out",
            "https://app.example.com:8443/signed-out?x=1",
            "https://app.example.com:8444/signed-out",
            "https://app.example.com/signed-out",
            "http://app.example.com:8443/signed-out",
        ] {
            let reply = h.get(fw, &logout_path(near_miss), None).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "{fw:?} {near_miss}: {}",
                reply.raw_body
            );
            assert_eq!(reply.location, None, "{fw:?} {near_miss}");
        }
        let reply = h.get(fw, "/api/auth/v2/logout", None).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.body, json!({"detail": "Logged out"}), "{fw:?}");
    }
    assert_eq!(h.idp.hits(Endpoint::EndSession), 0);
}
