//! Variants of SECURITY.md groups D-F (login flow endpoints, refresh, device, exchange, broker)
//! beyond the listed cases, on both frameworks.
//!
//! Each test names the class it extends. Every refusal is checked for its status and RFC error
//! code, for the provider calls it must not cause (hit counters of the mock provider), and for
//! what it must not echo.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oidc_auth::store;
use oidc_auth::store::memory::MemoryStore;
use oidc_auth::testing::{Endpoint, Fault, MockProvider};
use oidc_auth::{Clock, ManualClock, OidcConfigBuilder, SystemClock};
use oidc_auth_tests::broker::{
    BROKER_AUDIENCE, TOKEN, exchange, exchange_as, exchange_form, field, jwt, login, provider,
    refresh, serve_broker,
};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, browser_login, client_token_call,
    into_reply, location, query_param,
};
use serde_json::{Value, json};
use url::Url;

const LOGIN: &str = "/api/auth/v2/login";
const CALLBACK: &str = "/api/auth/v2/callback";
const LOGOUT: &str = "/api/auth/v2/logout";
const DEVICE: &str = "/api/auth/v2/device";
const USERINFO: &str = "/api/auth/v2/userinfo";
const APP_CALLBACK: &str = "https://app.example.com/api/auth/v2/callback";
const APP_BYE: &str = "https://app.example.com/bye";
const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// 32 bytes, base64: the state-sealing key shared by the instances of one deployment.
const STATE_KEY: &str = "c3RhdGUta2V5LXN0YXRlLWtleS1zdGF0ZS1rZXktMzI=";

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// A mock provider (access tokens for `api`, no device pacing) and both frameworks, with a
/// configured login and logout allow-list.
async fn harness() -> Harness {
    harness_on(None).await
}

async fn harness_on(clock: Option<ManualClock>) -> Harness {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_device_interval(Some(0));
    Harness::with(idp, allow_lists, clock).await
}

fn allow_lists(b: OidcConfigBuilder) -> OidcConfigBuilder {
    b.client_id("test-client")
        .login_redirect_uris([APP_CALLBACK.to_owned()])
        .logout_redirect_uris([APP_BYE.to_owned()])
}

/// A broker on a memory store, with an extra exchange audience `downstream`.
async fn broker() -> (Harness, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let h = serve_broker(
        provider().await,
        store.clone(),
        |c| c.exchange_audiences(["downstream".to_owned()]),
        None,
    )
    .await;
    (h, store)
}

/// GET `path_and_query` without following redirects: status, `Location`, reply.
async fn raw_get(h: &Harness, fw: Framework, path_and_query: &str) -> (u16, Option<String>, Reply) {
    let response = h
        .client()
        .get(h.url(fw, path_and_query))
        .send()
        .await
        .expect("the server answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply = into_reply(response).await;
    (reply.status, location, reply)
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The sealed handle at the end of the callback's `state`.
fn handle_of(callback: &Url) -> String {
    query_param(callback, "state")
        .unwrap_or_default()
        .rsplit('|')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn token_hits(h: &Harness) -> usize {
    h.idp.hits(Endpoint::Token)
}

/// A code-grant form as py-oidc-auth-client sends it, with `verifier` as `code_verifier`.
async fn code_call(h: &Harness, fw: Framework, code: &str, verifier: &str) -> Reply {
    h.post_form(
        fw,
        TOKEN,
        &[
            ("code", code),
            ("redirect_uri", LOOPBACK),
            ("grant_type", "authorization_code"),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// POSTs a raw body with a content type to `path`.
async fn post_raw(
    h: &Harness,
    fw: Framework,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let response = h
        .client()
        .post(h.url(fw, path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the server answers");
    into_reply(response).await
}

/// Asserts a client error (4xx): never a success, a redirect or a server error.
fn assert_client_error(reply: &Reply, what: &str) {
    assert!(
        (400..500).contains(&reply.status),
        "{what}: expected a 4xx, got {}: {}",
        reply.status,
        reply.raw_body
    );
}

/// Asserts `reply` does not contain any of `secrets`.
fn assert_not_echoed(reply: &Reply, secrets: &[&str], what: &str) {
    for secret in secrets {
        if secret.len() >= 4 {
            assert!(
                !reply.raw_body.contains(secret),
                "{what}: the answer echoes {secret:?}: {}",
                reply.raw_body
            );
        }
    }
}

/// Flips one bit of byte `index` of the decoded handle and encodes it again.
fn flip(handle: &str, index: usize) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(handle).unwrap_or_default();
    let len = bytes.len();
    if len > 0 {
        bytes[index.min(len - 1)] ^= 0x01;
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

// ------------------------------------------------------------------------------------------
// D11 / D12: login redirect_uri
// ------------------------------------------------------------------------------------------

/// D11 variant: look-alike hosts, numeric and mapped loopback spellings, userinfo and backslash
/// tricks, encoded dots, fragments, case changes, IDN look-alikes, trailing dots, invalid ports,
/// https loopback, other schemes and raw control characters are all refused with 400
/// `invalid_request`, no `Location`, nothing of the URI echoed, and the provider is never
/// contacted (not even discovery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d11_redirect_uri_lookalikes_encodings_and_spellings_are_refused() {
    let h = harness().await;
    let long = format!("http://localhost:53100/{}", "a".repeat(3000));
    let hostile: Vec<String> = [
        "http://localhost.evil.com:53100/callback",
        "http://localhost.evil.com/",
        "http://127.0.0.1.nip.io:53100/callback",
        "http://[::ffff:127.0.0.1]:53100/callback",
        "http://0x7f.0.0.1:53100/callback",
        "http://0x7f000001:53100/callback",
        "http://2130706433:53100/callback",
        "http://0177.0.0.1:53100/callback",
        "http://127.1:53100/callback",
        "http://localhost:80@evil.com/callback",
        "http://localhost:53100@evil.com:53100/callback",
        "http://:@localhost:53100/callback",
        "http://localhost\\@evil.com/",
        "http://localhost:53100\\callback",
        "http:\\\\localhost:53100\\callback",
        "http:/localhost:53100/callback",
        "http:localhost:53100/callback",
        "http://evil.com#@localhost:53100/callback",
        "http://evil.com?@localhost:53100/callback",
        "http://evil.com\\.localhost:53100/",
        "https://app.example.com/api/auth/v2/%2e%2e/v2/callback",
        "https://app.example.com/api/auth/v2/callback/%2e%2e/callback",
        "https://app.example.com/api/auth/v2/callback/.",
        "https://app.example.com/api/auth/v2/callback?next=https://evil.com",
        "https://app.example.com/api/auth/v2/callback#",
        "https://app.example.com/api/auth/v2/callback#frag",
        "http://localhost:53100/callback#frag",
        "https://app.example.com:443/api/auth/v2/callback",
        "HTTPS://app.example.com/api/auth/v2/callback",
        "HTTP://LOCALHOST:53100/callback",
        "http://LocalHost:53100/callback",
        "http://%6c%6fcalhost:53100/callback",
        "http://l\u{043e}calhost:53100/callback",
        "http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}:53100/callback",
        "http://xn--lcalhost-9wg:53100/callback",
        "http://localhost.:53100/callback",
        "https://app.example.com./api/auth/v2/callback",
        "http://localhost:65536/callback",
        "http://localhost:99999999999/callback",
        "http://localhost:-1/callback",
        "http://localhost:53100.evil.com/callback",
        "https://localhost:53100/callback",
        "https://127.0.0.1:53100/callback",
        "ws://localhost:53100/callback",
        "ftp://localhost/callback",
        "file:///etc/passwd",
        "JaVaScRiPt:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "\u{0}javascript:alert(1)",
        "http://localhost:53100/callback\r\nSet-Cookie: evil=1",
        "http://localhost:53100/call\tback",
        "http://localhost:53100/callback\u{0}",
        "http://localhost:53100/\u{202e}kcabllac",
        "\\\\evil.com/callback",
        "/callback",
        "",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([long])
    .collect();
    for fw in FRAMEWORKS {
        for redirect in &hostile {
            let (status, location, reply) = raw_get(
                &h,
                fw,
                &format!("{LOGIN}?{}", query(&[("redirect_uri", redirect)])),
            )
            .await;
            assert_eq!(status, 400, "{fw:?} {redirect:?}: {}", reply.raw_body);
            assert_eq!(reply.error(), Some("invalid_request"), "{redirect:?}");
            assert!(location.is_none(), "{redirect:?}");
            assert!(
                !reply.raw_body.contains("evil") && !reply.raw_body.contains("alert"),
                "{redirect:?} echoed: {}",
                reply.raw_body
            );
        }
    }
    for endpoint in [Endpoint::Discovery, Endpoint::Authorize, Endpoint::Token] {
        assert_eq!(h.idp.hits(endpoint), 0, "{endpoint:?} was contacted");
    }
}

/// D11 variant: a second `redirect_uri` parameter (allowed one first or second), or a query
/// string larger than the form limit, is refused before the provider is contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d11_repeated_or_oversized_redirect_uri_parameters_are_refused() {
    let h = harness().await;
    let huge = format!("http://localhost:53100/{}", "a".repeat(20 * 1024));
    for fw in FRAMEWORKS {
        for q in [
            query(&[
                ("redirect_uri", LOOPBACK),
                ("redirect_uri", "https://evil.com/cb"),
            ]),
            query(&[
                ("redirect_uri", "https://evil.com/cb"),
                ("redirect_uri", LOOPBACK),
            ]),
            query(&[("redirect_uri", LOOPBACK), ("redirect_uri", LOOPBACK)]),
            query(&[("redirect_uri", &huge)]),
        ] {
            let (status, location, reply) = raw_get(&h, fw, &format!("{LOGIN}?{q}")).await;
            assert_client_error(&reply, &q[..q.len().min(120)]);
            assert!(location.is_none());
            assert!(!reply.raw_body.contains("evil"), "{}", reply.raw_body);
            assert_ne!(status, 302);
        }
    }
    assert_eq!(h.idp.hits(Endpoint::Discovery), 0);
    assert_eq!(h.idp.hits(Endpoint::Authorize), 0);
}

/// D12 variant: loopback spellings that are allowed (IPv6 `[::1]`, no port, the highest port,
/// a query) are passed to the provider byte for byte, and the token call must repeat exactly
/// that URI: a trailing slash, a case change or an explicit default port is another URI (400,
/// no token request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d12_accepted_loopback_uris_reach_the_provider_exactly_and_must_be_repeated_exactly() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        for redirect in [
            "http://[::1]:53100/callback",
            "http://localhost/callback",
            "http://127.0.0.1:65535/cb",
            "http://localhost:53100/callback?client=cli",
        ] {
            let (status, location, reply) = raw_get(
                &h,
                fw,
                &format!("{LOGIN}?{}", query(&[("redirect_uri", redirect)])),
            )
            .await;
            assert_eq!(status, 302, "{redirect}: {}", reply.raw_body);
            let location = Url::parse(&location.unwrap_or_default()).expect("Location");
            assert_eq!(
                query_param(&location, "redirect_uri").as_deref(),
                Some(redirect)
            );
            let pairs: Vec<_> = location.query_pairs().collect();
            assert_eq!(
                pairs.iter().filter(|(k, _)| k == "redirect_uri").count(),
                1,
                "{location}"
            );
        }
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let verifier = handle_of(&callback);
        let hits = token_hits(&h);
        for other in [
            "http://localhost:53100/callback/",
            "http://LOCALHOST:53100/callback",
            "http://localhost:53100/Callback",
            "http://127.0.0.1:53100/callback",
            "http://localhost:53100/callback?",
            "http://localhost:53100/callback#",
            " http://localhost:53100/callback",
        ] {
            let reply = h
                .post_form(
                    fw,
                    TOKEN,
                    &[
                        ("code", &code),
                        ("redirect_uri", other),
                        ("code_verifier", &verifier),
                    ],
                )
                .await;
            assert_eq!(reply.status, 400, "{other}: {}", reply.raw_body);
            assert_eq!(token_hits(&h), hits, "{other}");
        }
    }
}

/// D6/D11 variant: a client cannot smuggle authorization-request parameters through `/login`:
/// its own `client_id`, `state`, `nonce`, `response_type` or `response_mode` are not forwarded,
/// a scope carrying `&`/`=` stays one scope value, and a `plain` or malformed client challenge
/// and an unknown prompt are refused before the provider is contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d11_login_parameters_cannot_smuggle_authorization_request_fields() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let q = query(&[
            ("redirect_uri", LOOPBACK),
            ("client_id", "evil-client"),
            ("state", "attacker-state"),
            ("nonce", "attacker-nonce"),
            ("response_type", "token"),
            ("response_mode", "form_post"),
            (
                "scope",
                "openid&client_id=evil-client&redirect_uri=https://evil.com/",
            ),
        ]);
        let (status, location, reply) = raw_get(&h, fw, &format!("{LOGIN}?{q}")).await;
        if status == 302 {
            let location = Url::parse(&location.unwrap_or_default()).expect("Location");
            let pairs: Vec<(String, String)> = location
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let values = |name: &str| -> Vec<&str> {
                pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect()
            };
            assert_eq!(values("client_id"), vec!["test-client"], "{location}");
            assert_eq!(values("redirect_uri"), vec![LOOPBACK], "{location}");
            assert_eq!(values("response_type"), vec!["code"], "{location}");
            assert!(values("response_mode").is_empty(), "{location}");
            assert!(
                values("state")
                    .iter()
                    .all(|s| !s.contains("attacker") && s.contains('|')),
                "{location}"
            );
            assert!(
                values("nonce").iter().all(|s| !s.contains("attacker")),
                "{location}"
            );
        } else {
            assert_eq!(status, 400, "{}", reply.raw_body);
        }
    }
    let discovery = h.idp.hits(Endpoint::Discovery);
    let challenge = URL_SAFE_NO_PAD.encode([7u8; 32]);
    for fw in FRAMEWORKS {
        for extra in [
            vec![
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            vec![
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "s256"),
            ],
            vec![("code_challenge", "short")],
            vec![("code_challenge", &"A".repeat(128))],
            vec![(
                "code_challenge",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )],
            vec![("prompt", "none login")],
            vec![("prompt", "consent"), ("prompt", "none")],
            vec![("scope", "openid\"admin")],
            vec![("scope", "openid\nadmin")],
        ] {
            let mut pairs = vec![("redirect_uri", LOOPBACK)];
            pairs.extend(extra.iter().copied());
            let (status, location, reply) =
                raw_get(&h, fw, &format!("{LOGIN}?{}", query(&pairs))).await;
            assert_eq!(status, 400, "{extra:?}: {}", reply.raw_body);
            assert_eq!(reply.error(), Some("invalid_request"), "{extra:?}");
            assert!(location.is_none());
        }
    }
    assert_eq!(
        h.idp.hits(Endpoint::Discovery),
        discovery,
        "refused before the provider is contacted"
    );
}

// ------------------------------------------------------------------------------------------
// D1 / D2 / D3: the state handle
// ------------------------------------------------------------------------------------------

/// D1 variant: the genuine handle truncated, bit-flipped in its nonce, ciphertext and tag,
/// padded, extended, re-encoded with the standard alphabet or with non-canonical trailing bits,
/// case-changed, or wrapped in extra `|` segments is refused with 400 and no token request;
/// none of these attempts spends the genuine handle, which still completes the login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_mangled_handles_are_refused_without_a_provider_call() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let handle = handle_of(&callback);
        let state = query_param(&callback, "state").unwrap_or_default();
        let decoded_len = URL_SAFE_NO_PAD
            .decode(&handle)
            .map(|b| b.len())
            .unwrap_or(0);
        assert!(decoded_len > 40, "the handle decodes: {handle}");
        // Non-canonical: the last character carries unused low bits; set one of them.
        let non_canonical = {
            let mut chars: Vec<char> = handle.chars().collect();
            let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            if let Some(last) = chars.last_mut()
                && let Some(pos) = alphabet.find(*last)
            {
                *last = alphabet.chars().nth(pos ^ 1).unwrap_or('A');
            }
            chars.into_iter().collect::<String>()
        };
        let mangled: Vec<(String, String)> = vec![
            (
                "truncated by 1".into(),
                handle[..handle.len() - 1].to_owned(),
            ),
            (
                "truncated by 4".into(),
                handle[..handle.len() - 4].to_owned(),
            ),
            ("first half".into(), handle[..handle.len() / 2].to_owned()),
            ("nonce bit".into(), flip(&handle, 0)),
            ("ciphertext bit".into(), flip(&handle, 20)),
            ("tag bit".into(), flip(&handle, decoded_len - 1)),
            ("padded".into(), format!("{handle}==")),
            ("extended".into(), format!("{handle}AAAA")),
            ("doubled".into(), format!("{handle}{handle}")),
            (
                "standard alphabet".into(),
                STANDARD.encode(URL_SAFE_NO_PAD.decode(&handle).unwrap_or_default()),
            ),
            ("non-canonical".into(), non_canonical),
            ("upper case".into(), handle.to_uppercase()),
            ("whole state".into(), state.clone()),
            ("extra segments".into(), format!("a|b|{handle}")),
            ("trailing bar".into(), format!("{handle}|")),
            ("leading space".into(), format!(" {handle}")),
            ("trailing newline".into(), format!("{handle}\n")),
            ("percent-encoded".into(), handle.replace('-', "%2D")),
        ];
        let hits = token_hits(&h);
        for (what, verifier) in &mangled {
            if verifier == &handle {
                continue;
            }
            let reply = code_call(&h, fw, &code, verifier).await;
            assert_eq!(reply.status, 400, "{fw:?} {what}: {}", reply.raw_body);
            assert_eq!(
                token_hits(&h),
                hits,
                "{fw:?} {what}: the provider was asked"
            );
            assert_not_echoed(&reply, &[&handle, &code], what);
        }
        let honest = client_token_call(&h, fw, &callback).await;
        assert_eq!(
            honest.status, 200,
            "failed attempts must not spend the handle: {}",
            honest.raw_body
        );
    }
}

/// D1 variant: values other than the handle sent as `code_verifier` (the first `state`
/// segment, the nonce, the code challenge, the code itself, a 43-character verifier-shaped
/// string) are refused with no token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_code_verifier_must_be_the_handle_not_another_login_value() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (authorize, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let state = query_param(&callback, "state").unwrap_or_default();
        let first = state.split('|').next().unwrap_or_default().to_owned();
        let nonce = query_param(&authorize, "nonce").unwrap_or_default();
        let challenge = query_param(&authorize, "code_challenge").unwrap_or_default();
        let shaped = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
        let hits = token_hits(&h);
        for (what, verifier) in [
            ("first state segment", first),
            ("nonce", nonce),
            ("code challenge", challenge),
            ("code", code.clone()),
            ("verifier-shaped", shaped),
        ] {
            let reply = code_call(&h, fw, &code, &verifier).await;
            assert_eq!(reply.status, 400, "{what}: {}", reply.raw_body);
            assert_eq!(token_hits(&h), hits, "{what}");
        }
    }
}

/// D1 variant, client-side PKCE mixed with the handle: for a login that brought its own
/// `code_challenge`, the handle is not a verifier; the client's verifier needs that login's
/// `state` (not none, not another login's); a wrong verifier spends the login; none of these
/// reaches the provider, and the server-side callback refuses such a login too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_client_pkce_and_handle_cannot_be_mixed() {
    let h = harness().await;
    let verifier = URL_SAFE_NO_PAD.encode([42u8; 32]);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let pkce_login = |fw: Framework| {
        let h = &h;
        let challenge = challenge.clone();
        async move {
            let path = format!(
                "{LOGIN}?{}",
                query(&[
                    ("redirect_uri", LOOPBACK),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ])
            );
            let authorize = location(h, &h.url(fw, &path)).await;
            assert_eq!(
                query_param(&authorize, "code_challenge").as_deref(),
                Some(challenge.as_str())
            );
            location(h, authorize.as_str()).await
        }
    };
    let with_state = |code: &str, verifier: &str, state: Option<&str>| {
        let mut form = vec![
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), LOOPBACK.to_owned()),
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code_verifier".to_owned(), verifier.to_owned()),
        ];
        if let Some(state) = state {
            form.push(("state".to_owned(), state.to_owned()));
        }
        form
    };
    let post = |fw: Framework, form: Vec<(String, String)>| {
        let h = &h;
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            h.post_form(fw, TOKEN, &pairs).await
        }
    };
    for fw in FRAMEWORKS {
        let callback = pkce_login(fw).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let state = query_param(&callback, "state").unwrap_or_default();
        let (_, other) = browser_login(&h, fw, LOOPBACK).await;
        let other_state = query_param(&other, "state").unwrap_or_default();
        let hits = token_hits(&h);
        for (what, form) in [
            (
                "handle as verifier",
                with_state(&code, &handle_of(&callback), None),
            ),
            (
                "handle as verifier, with state",
                with_state(&code, &handle_of(&callback), Some(&state)),
            ),
            ("own verifier, no state", with_state(&code, &verifier, None)),
            (
                "own verifier, another login's state",
                with_state(&code, &verifier, Some(&other_state)),
            ),
        ] {
            let reply = post(fw, form).await;
            assert_eq!(reply.status, 400, "{what}: {}", reply.raw_body);
            assert_eq!(token_hits(&h), hits, "{what}");
            assert_not_echoed(&reply, &[&verifier, &code], what);
        }
        let wrong = post(fw, with_state(&code, &"x".repeat(43), Some(&state))).await;
        assert_eq!(
            (wrong.status, wrong.error()),
            (400, Some("invalid_grant")),
            "{}",
            wrong.raw_body
        );
        let late = post(fw, with_state(&code, &verifier, Some(&state))).await;
        assert_eq!(late.status, 400, "a wrong verifier spends the login");
        assert_eq!(token_hits(&h), hits, "nothing reached the provider");

        // The other (server-PKCE) login is untouched and completes.
        assert_eq!(client_token_call(&h, fw, &other).await.status, 200);

        // A fresh client-PKCE login completes with its own verifier and its state.
        let callback = pkce_login(fw).await;
        let fresh = post(
            fw,
            with_state(
                &query_param(&callback, "code").unwrap_or_default(),
                &verifier,
                query_param(&callback, "state").as_deref(),
            ),
        )
        .await;
        assert_eq!(fresh.status, 200, "{}", fresh.raw_body);
        let sent = h.idp.last_token_request().unwrap_or_default();
        assert_eq!(sent.get("code_verifier"), Some(&verifier));

        // The server-side callback does not complete a client-PKCE login.
        let callback = pkce_login(fw).await;
        let hits = token_hits(&h);
        let path = format!("{CALLBACK}?{}", callback.query().unwrap_or_default());
        let reply = h.get(fw, &path, None).await;
        assert_eq!(reply.status, 400, "{}", reply.raw_body);
        assert_eq!(token_hits(&h), hits);
    }
}

/// D2 variant: a spent handle stays spent on the other framework, at the server-side callback,
/// and with a *fresh* code obtained by replaying the authorization URL at the provider (same
/// state and challenge): 400 and no token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_a_spent_handle_stays_spent_across_frameworks_and_fresh_codes() {
    let h = harness().await;
    for (first, second) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let (authorize, callback) = browser_login(&h, first, LOOPBACK).await;
        assert_eq!(client_token_call(&h, first, &callback).await.status, 200);
        let fresh = location(&h, authorize.as_str()).await;
        assert_ne!(
            query_param(&fresh, "code"),
            query_param(&callback, "code"),
            "the provider issued a new code"
        );
        let hits = token_hits(&h);
        for (fw, url) in [(second, &callback), (second, &fresh), (first, &fresh)] {
            let reply = client_token_call(&h, fw, url).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_grant")),
                "{fw:?}: {}",
                reply.raw_body
            );
            let path = format!("{CALLBACK}?{}", url.query().unwrap_or_default());
            let reply = h.get(fw, &path, None).await;
            assert_eq!(reply.status, 400, "callback on {fw:?}: {}", reply.raw_body);
        }
        assert_eq!(token_hits(&h), hits, "no token request for a spent handle");
    }
    // The server-side callback: spent on one framework, refused on the other.
    for (first, second) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let (_, callback) = browser_login(&h, first, &h.url(first, "/api/auth/v2/callback")).await;
        let path = format!("{CALLBACK}?{}", callback.query().unwrap_or_default());
        assert_eq!(h.get(first, &path, None).await.status, 200);
        let hits = token_hits(&h);
        assert_eq!(h.get(second, &path, None).await.status, 400);
        assert_eq!(token_hits(&h), hits);
    }
}

/// D2 variant, multi-instance deployment: two broker instances share the state-sealing key
/// (so either can open a handle) and one store. A handle redeemed on instance A must be spent
/// on instance B too: B answers 400 and sends no token request to the provider, whether the
/// replay carries a fresh code for the same login (obtained by replaying the authorization
/// URL) or the code already redeemed. Every case is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_a_handle_is_single_use_across_instances_sharing_the_state_key() {
    let idp = provider().await;
    let store = Arc::new(MemoryStore::new());
    let a = serve_broker(idp.clone(), store.clone(), |c| c.state_key(STATE_KEY), None).await;
    let b = serve_broker(idp.clone(), store.clone(), |c| c.state_key(STATE_KEY), None).await;
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        // Control: the instances do share the key; a login started on A completes on B.
        let (_, started_on_a) = browser_login(&a, fw, LOOPBACK).await;
        let shared = client_token_call(&b, fw, &started_on_a).await;
        assert_eq!(shared.status, 200, "shared state key: {}", shared.raw_body);

        let (authorize, callback) = browser_login(&a, fw, LOOPBACK).await;
        let first = client_token_call(&a, fw, &callback).await;
        assert_eq!(first.status, 200, "{}", first.raw_body);
        let fresh = location(&a, authorize.as_str()).await;
        for (what, url) in [("fresh code", &fresh), ("redeemed code", &callback)] {
            let hits = idp.hits(Endpoint::Token);
            let replay = client_token_call(&b, fw, url).await;
            let asked = idp.hits(Endpoint::Token) - hits;
            if replay.status != 400 || asked != 0 {
                failures.push(format!(
                    "{what} with A's spent handle on B ({fw:?}): {} {:?}, {asked} provider token request(s){}",
                    replay.status,
                    replay.error(),
                    if replay.status == 200 { " -> a second session from one login" } else { "" }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "handle replay across instances:\n{}",
        failures.join("\n")
    );
}

/// D3 variant: the lifetime boundary. A handle is good 599 s after login and refused at
/// exactly 600 s (no token request), on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_handle_lifetime_boundary_is_exact() {
    let clock = ManualClock::new(SystemClock.now());
    let h = harness_on(Some(clock.clone())).await;
    // The provider signs on its own clock: give its ID tokens an hour, so that 599 s on this
    // server's clock tests the handle and not the ID token.
    h.idp
        .set_id_token_tweak(Some(Arc::new(|c: &mut serde_json::Map<String, Value>| {
            c.insert("exp".into(), json!(SystemClock.now() + 3600));
        })));
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        clock.advance(599);
        let reply = client_token_call(&h, fw, &callback).await;
        assert_eq!(reply.status, 200, "599 s: {}", reply.raw_body);
        clock.advance(-599);

        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        clock.advance(600);
        let hits = token_hits(&h);
        let reply = client_token_call(&h, fw, &callback).await;
        assert_eq!((reply.status, reply.error()), (400, Some("invalid_grant")));
        let path = format!("{CALLBACK}?{}", callback.query().unwrap_or_default());
        assert_eq!(h.get(fw, &path, None).await.status, 400);
        assert_eq!(token_hits(&h), hits);
        clock.advance(-600);
    }
}

// ------------------------------------------------------------------------------------------
// D4 / D5 / D8 / D9 / D10: callback and ID token
// ------------------------------------------------------------------------------------------

/// D4 variant: the authorization response's `iss` with a trailing slash, in upper case, empty,
/// or repeated (right and wrong, either order) is refused with 400 and no token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_iss_near_misses_and_repeated_iss_are_refused() {
    let h = harness().await;
    let issuer = h.idp.issuer();
    type Tweak = Box<dyn Fn(&str) -> Vec<(String, String)>>;
    let cases: Vec<(&str, Tweak)> = vec![
        (
            "trailing slash",
            Box::new(|i: &str| vec![("iss".into(), format!("{i}/"))]),
        ),
        (
            "upper case",
            Box::new(|i: &str| vec![("iss".into(), i.to_uppercase())]),
        ),
        (
            "empty",
            Box::new(|_: &str| vec![("iss".into(), String::new())]),
        ),
        (
            "right then wrong",
            Box::new(|i: &str| {
                vec![
                    ("iss".into(), i.to_owned()),
                    ("iss".into(), "https://evil.example".into()),
                ]
            }),
        ),
        (
            "wrong then right",
            Box::new(|i: &str| {
                vec![
                    ("iss".into(), "https://evil.example".into()),
                    ("iss".into(), i.to_owned()),
                ]
            }),
        ),
    ];
    for (case, make) in cases {
        let replacement = make(&issuer);
        h.idp
            .set_authorize_response_tweak(Some(Arc::new(move |q: &mut Vec<(String, String)>| {
                q.retain(|(k, _)| k != "iss");
                q.extend(replacement.iter().cloned());
            })));
        for fw in FRAMEWORKS {
            let (_, callback) = browser_login(&h, fw, &h.url(fw, CALLBACK)).await;
            let hits = token_hits(&h);
            let reply = into_reply(
                h.client()
                    .get(callback.as_str())
                    .send()
                    .await
                    .expect("answer"),
            )
            .await;
            assert_eq!(reply.status, 400, "{case} on {fw:?}: {}", reply.raw_body);
            assert_eq!(token_hits(&h), hits, "{case}");
            assert!(reply.body.get("access_token").is_none());
        }
    }
}

/// D5 variant: provider errors other than `access_denied` (`server_error`, an unknown code, a
/// script, an empty `error`), with or without a code, end in 400 without a token request; the
/// error text is not reflected; the transaction is spent, so the code that came with it cannot
/// be redeemed afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_callback_errors_are_not_reflected_and_spend_the_transaction() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        for error in [
            "server_error",
            "temporarily_unavailable",
            "<script>alert(1)</script>",
            "",
            "access_denied\r\nSet-Cookie: evil=1",
        ] {
            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            let code = query_param(&callback, "code").unwrap_or_default();
            let state = query_param(&callback, "state").unwrap_or_default();
            let hits = token_hits(&h);
            let path = format!(
                "{CALLBACK}?{}",
                query(&[
                    ("code", &code),
                    ("state", &state),
                    ("error", error),
                    ("error_description", "<img src=x onerror=alert(2)> evil"),
                ])
            );
            let reply = h.get(fw, &path, None).await;
            assert_eq!(reply.status, 400, "{error:?}: {}", reply.raw_body);
            assert!(
                matches!(reply.error(), Some("invalid_request" | "access_denied")),
                "{error:?}: {}",
                reply.raw_body
            );
            assert!(
                !reply.raw_body.contains("<script")
                    && !reply.raw_body.contains("onerror")
                    && !reply.raw_body.contains("Set-Cookie")
                    && !reply.raw_body.contains("evil"),
                "{error:?} reflected: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &[&code, &handle_of(&callback)], error);
            let after = client_token_call(&h, fw, &callback).await;
            assert_eq!(after.status, 400, "{error:?}: transaction spent");
            assert_eq!(token_hits(&h), hits, "{error:?}");
        }
        // An error without any state is a plain 400.
        let reply = h
            .get(fw, &format!("{CALLBACK}?error=access_denied"), None)
            .await;
        assert_eq!(reply.status, 400);
    }
    assert_eq!(h.idp.hits(Endpoint::Token), 0);
}

/// D8 variant: ID token claims of the wrong JSON type or near-miss values (nonce as an array
/// holding the right nonce, nonce as a number, empty or numeric `sub`, `iat`/`exp` as strings,
/// `exp` beyond 2^53, `iss` with a trailing slash, empty `aud` list, `aud` with the client only
/// in a nested array, `nbf` in the future) end the exchange with 400 and no userinfo request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d8_id_token_claims_of_the_wrong_type_are_refused() {
    type Tweak = fn(&mut serde_json::Map<String, Value>);
    let cases: [(&str, Tweak); 13] = [
        ("nonce array", |c| {
            let nonce = c.get("nonce").cloned().unwrap_or(Value::Null);
            c.insert("nonce".into(), json!([nonce]));
        }),
        ("nonce number", |c| {
            c.insert("nonce".into(), json!(12345));
        }),
        ("nonce with a trailing space", |c| {
            let nonce = c.get("nonce").and_then(Value::as_str).unwrap_or_default();
            c.insert("nonce".into(), json!(format!("{nonce} ")));
        }),
        ("empty sub", |c| {
            c.insert("sub".into(), json!(""));
        }),
        ("numeric sub", |c| {
            c.insert("sub".into(), json!(42));
        }),
        ("iat as string", |c| {
            let iat = c.get("iat").and_then(Value::as_i64).unwrap_or(0);
            c.insert("iat".into(), json!(iat.to_string()));
        }),
        ("exp as string", |c| {
            c.insert("exp".into(), json!("99999999999"));
        }),
        ("exp beyond 2^53", |c| {
            c.insert("exp".into(), json!(9_007_199_254_740_993_u64));
        }),
        ("exp as float", |c| {
            c.insert("exp".into(), json!(1e300));
        }),
        ("iss with trailing slash", |c| {
            let iss = c.get("iss").and_then(Value::as_str).unwrap_or_default();
            c.insert("iss".into(), json!(format!("{iss}/")));
        }),
        ("empty aud list", |c| {
            c.insert("aud".into(), json!([]));
        }),
        ("nested aud", |c| {
            c.insert("aud".into(), json!([["test-client"]]));
        }),
        ("nbf in the future", |c| {
            let now = SystemClock.now();
            c.insert("nbf".into(), json!(now + 3600));
        }),
    ];
    let h = harness().await;
    for (case, tweak) in cases {
        h.idp.set_id_token_tweak(Some(Arc::new(tweak)));
        for fw in FRAMEWORKS {
            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            let reply = client_token_call(&h, fw, &callback).await;
            assert_eq!(reply.status, 400, "{case} on {fw:?}: {}", reply.raw_body);
            assert!(reply.body.get("access_token").is_none(), "{case}");
        }
    }
    assert_eq!(h.idp.hits(Endpoint::Userinfo), 0);
}

/// D9 variant: a userinfo `sub` that differs from the token's only by case or whitespace, or
/// is missing, numeric or null, is refused (400), and the answer does not describe the other
/// user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d9_userinfo_subject_near_misses_are_refused() {
    let h = harness().await;
    let (_, callback) = browser_login(&h, Framework::Axum, LOOPBACK).await;
    let access = client_token_call(&h, Framework::Axum, &callback).await.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for sub in [
        json!("Alice"),
        json!("alice "),
        json!(" alice"),
        json!("alice\u{0}"),
        json!(42),
        Value::Null,
        json!(["alice"]),
    ] {
        let mut answer = json!({"preferred_username": "mallory", "email": "mallory@evil.example"});
        if !sub.is_null() {
            answer["sub"] = sub.clone();
        }
        h.idp.set_userinfo_override(Some(answer));
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, USERINFO, &access).await;
            assert_eq!(reply.status, 400, "sub {sub} on {fw:?}: {}", reply.raw_body);
            assert!(!reply.raw_body.contains("mallory"), "{}", reply.raw_body);
            assert_not_echoed(&reply, &[&access], "userinfo");
        }
    }
}

/// D10 variant: a discovery document whose `issuer` differs from the configured one only by a
/// trailing slash, letter case, or `localhost` for `127.0.0.1` is not adopted: login answers
/// 503 (never a redirect to the provider) and validation 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d10_discovery_issuer_near_misses_are_not_adopted() {
    for variant in 0..3 {
        let idp = MockProvider::start().await.expect("provider");
        idp.set_access_token_audience(AUDIENCE);
        let issuer = idp.issuer();
        let near = match variant {
            0 => format!("{issuer}/"),
            1 => issuer.to_uppercase(),
            _ => issuer.replace("127.0.0.1", "localhost"),
        };
        idp.set_discovery_issuer(Some(near.clone()));
        let h = Harness::with(idp, |b| b, None).await;
        for fw in FRAMEWORKS {
            let (status, location, reply) = raw_get(
                &h,
                fw,
                &format!("{LOGIN}?{}", query(&[("redirect_uri", LOOPBACK)])),
            )
            .await;
            assert_eq!(status, 503, "{near}: {}", reply.raw_body);
            assert!(location.is_none());
        }
        let token = h.idp.token().audience(AUDIENCE).sign();
        assert_eq!(h.bearer_both("/me", &token).await.status, 503, "{near}");
        assert_eq!(h.idp.hits(Endpoint::Authorize), 0);
        assert_eq!(h.idp.hits(Endpoint::Token), 0);
    }
}

// ------------------------------------------------------------------------------------------
// D13: logout
// ------------------------------------------------------------------------------------------

/// D13 variant: `post_logout_redirect_uri` values not byte-equal to the allow-listed one
/// (scheme or host case, explicit port, trailing dot, empty or extra query, fragment, encoded
/// characters and dots, backslashes, whitespace, loopback, other schemes, empty) or repeated
/// are refused with 400; nothing is echoed and the provider is never contacted. Without the
/// parameter the redirect carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d13_logout_redirect_near_misses_are_refused() {
    let h = harness().await;
    let bad = [
        "HTTPS://app.example.com/bye",
        "https://APP.example.com/bye",
        "https://app.example.com:443/bye",
        "https://app.example.com./bye",
        "https://app.example.com/bye?",
        "https://app.example.com/bye?next=https://evil.com",
        "https://app.example.com/bye#",
        "https://app.example.com/bye#evil",
        "https://app.example.com/%62ye",
        "https://app.example.com/x/%2e%2e/bye",
        "https://app.example.com\\bye",
        "https://app.example.com/bye ",
        " https://app.example.com/bye",
        "https://app.example.com/bye\r\nSet-Cookie: evil=1",
        "https://app.example.com@evil.com/bye",
        "https://evil.com\\@app.example.com/bye",
        "http://app.example.com/bye",
        "http://localhost:53100/bye",
        "http://127.0.0.1:53100/callback",
        "//app.example.com/bye",
        "javascript:alert(1)//https://app.example.com/bye",
        "",
    ];
    for fw in FRAMEWORKS {
        for value in bad {
            let path = format!("{LOGOUT}?{}", query(&[("post_logout_redirect_uri", value)]));
            let (status, location, reply) = raw_get(&h, fw, &path).await;
            assert_eq!(status, 400, "{fw:?} {value:?}: {}", reply.raw_body);
            assert_eq!(reply.error(), Some("invalid_request"), "{value:?}");
            assert!(location.is_none(), "{value:?}");
            assert!(
                !reply.raw_body.contains("evil") && !reply.raw_body.contains("alert"),
                "{}",
                reply.raw_body
            );
        }
        for pairs in [
            [
                ("post_logout_redirect_uri", APP_BYE),
                ("post_logout_redirect_uri", "https://evil.com/"),
            ],
            [
                ("post_logout_redirect_uri", "https://evil.com/"),
                ("post_logout_redirect_uri", APP_BYE),
            ],
        ] {
            let (status, location, reply) =
                raw_get(&h, fw, &format!("{LOGOUT}?{}", query(&pairs))).await;
            assert_client_error(&reply, "repeated post_logout_redirect_uri");
            assert_ne!(status, 302);
            assert!(location.is_none());
        }
        let (status, location, _) = raw_get(&h, fw, LOGOUT).await;
        assert_eq!(status, 302);
        let location = Url::parse(&location.unwrap_or_default()).expect("Location");
        assert!(location.as_str().starts_with(&h.idp.issuer()));
        assert_eq!(query_param(&location, "post_logout_redirect_uri"), None);
    }
    assert_eq!(h.idp.hits(Endpoint::EndSession), 0);
}

// ------------------------------------------------------------------------------------------
// Token endpoint form variants (D1, D2, E)
// ------------------------------------------------------------------------------------------

/// D1 variant: repeated fields (`code`, `code_verifier` with the valid handle first or second,
/// `redirect_uri`, `grant_type`, and the two spellings `refresh-token`/`refresh_token` and
/// `device-code`/`device_code`) are refused with 400 `invalid_request` and no provider request,
/// and do not spend the handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_form_with_repeated_fields_is_refused() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let handle = handle_of(&callback);
        let hits = token_hits(&h);
        let base = |extra: &[(&'static str, String)]| {
            let mut form: Vec<(&'static str, String)> = vec![
                ("code", code.clone()),
                ("redirect_uri", LOOPBACK.to_owned()),
                ("grant_type", "authorization_code".to_owned()),
                ("code_verifier", handle.clone()),
            ];
            form.extend_from_slice(extra);
            form
        };
        let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
            ("code twice", base(&[("code", "other-code".into())])),
            (
                "code_verifier twice, handle first",
                base(&[("code_verifier", "junk".into())]),
            ),
            (
                "code_verifier twice, handle second",
                vec![
                    ("code", code.clone()),
                    ("redirect_uri", LOOPBACK.to_owned()),
                    ("code_verifier", "junk".into()),
                    ("code_verifier", handle.clone()),
                ],
            ),
            (
                "redirect_uri twice",
                base(&[("redirect_uri", "https://evil.com/cb".into())]),
            ),
            (
                "grant_type twice",
                base(&[("grant_type", "refresh_token".into())]),
            ),
            (
                "refresh-token and refresh_token",
                vec![
                    ("refresh-token", "r-one".into()),
                    ("refresh_token", "r-two".into()),
                ],
            ),
            (
                "device-code and device_code",
                vec![
                    ("device-code", "d-one".into()),
                    ("device_code", "d-two".into()),
                ],
            ),
            (
                "refresh-token twice",
                vec![
                    ("refresh-token", "r-one".into()),
                    ("refresh-token", "r-two".into()),
                ],
            ),
        ];
        for (what, form) in cases {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = h.post_form(fw, TOKEN, &pairs).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "{what} on {fw:?}: {}",
                reply.raw_body
            );
            assert_eq!(token_hits(&h), hits, "{what}: the provider was asked");
            assert_not_echoed(&reply, &[&code, &handle], what);
        }
        assert_eq!(
            client_token_call(&h, fw, &callback).await.status,
            200,
            "refused forms do not spend the handle"
        );
    }
}

/// E variant (grant confusion): a form carrying the credentials of two grants at once
/// (`refresh-token` with `device-code`, a code grant with `refresh-token`, a code grant with
/// `device-code`) is ambiguous: 400 `invalid_request`, and no request reaches the provider.
/// py-oidc-auth-client never sends two of them. Every case is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_form_with_two_grants_is_ambiguous() {
    let h = harness().await;
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let refresh_token =
            field(&client_token_call(&h, fw, &callback).await, "refresh_token").to_owned();
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let handle = handle_of(&callback);
        for (what, form) in [
            (
                "refresh-token and device-code",
                vec![
                    ("refresh-token", refresh_token.as_str()),
                    ("device-code", "some-device-code"),
                ],
            ),
            (
                "code grant and device-code",
                vec![
                    ("code", code.as_str()),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", handle.as_str()),
                    ("device-code", "some-device-code"),
                ],
            ),
            (
                "code grant and refresh-token",
                vec![
                    ("code", code.as_str()),
                    ("redirect_uri", LOOPBACK),
                    ("grant_type", "authorization_code"),
                    ("code_verifier", handle.as_str()),
                    ("refresh-token", refresh_token.as_str()),
                ],
            ),
        ] {
            let hits = token_hits(&h);
            let reply = h.post_form(fw, TOKEN, &form).await;
            let asked = token_hits(&h) - hits;
            if (reply.status, reply.error()) != (400, Some("invalid_request")) || asked != 0 {
                failures.push(format!(
                    "{what} on {fw:?}: {} {:?}, {asked} provider token request(s)",
                    reply.status,
                    reply.error()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "ambiguous forms were served:\n{}",
        failures.join("\n")
    );
}

/// E variant (grant confusion): a `grant_type` that this server does not run (`password`,
/// `client_credentials`, `implicit`, a case-changed device grant) is `unsupported_grant_type`
/// whatever other fields the form carries, and a `grant_type` that names a different grant
/// than the credential sent (`authorization_code` with only a refresh token, `refresh_token`
/// with only a device code, the device grant with only a refresh token) is refused; no request
/// reaches the provider either way. Every case is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_grant_type_must_match_the_credential_sent() {
    let h = harness().await;
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let mut refresh_token =
            field(&client_token_call(&h, fw, &callback).await, "refresh_token").to_owned();
        let cases = [
            (
                "password",
                "refresh-token",
                true,
                Some("unsupported_grant_type"),
            ),
            (
                "client_credentials",
                "device-code",
                false,
                Some("unsupported_grant_type"),
            ),
            (
                "implicit",
                "refresh_token",
                true,
                Some("unsupported_grant_type"),
            ),
            (
                "URN:IETF:PARAMS:OAUTH:GRANT-TYPE:DEVICE_CODE",
                "device-code",
                false,
                Some("unsupported_grant_type"),
            ),
            ("authorization_code", "refresh-token", true, None),
            ("refresh_token", "device-code", false, None),
            (
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh-token",
                true,
                None,
            ),
        ];
        for (grant, field_name, live_refresh, code) in cases {
            let value = if live_refresh {
                refresh_token.clone()
            } else {
                "some-device-code".to_owned()
            };
            let hits = token_hits(&h);
            let reply = h
                .post_form(fw, TOKEN, &[("grant_type", grant), (field_name, &value)])
                .await;
            let asked = token_hits(&h) - hits;
            let code_ok = code.is_none_or(|c| reply.error() == Some(c));
            if reply.status != 400 || !code_ok || asked != 0 {
                failures.push(format!(
                    "grant_type={grant} with {field_name} on {fw:?}: {} {:?}, {asked} provider token request(s)",
                    reply.status,
                    reply.error()
                ));
            }
            assert_not_echoed(&reply, &[&refresh_token], grant);
            if reply.status == 200 {
                // The refresh happened and rotated the token: continue with the new one.
                refresh_token = field(&reply, "refresh_token").to_owned();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "grant confusion:\n{}",
        failures.join("\n")
    );
}

/// E variant (transport): a body over 1 MB, a JSON body, a `text/plain` or multipart body,
/// raw invalid UTF-8, an empty body, and GET/PUT with the credentials in the query are all
/// refused with a 4xx, without a provider request and without echoing the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_transport_variants_are_refused() {
    let h = harness().await;
    let secret = "r-secret-refresh-value";
    for fw in FRAMEWORKS {
        let hits = token_hits(&h);
        let huge = format!("refresh-token={}", "a".repeat(1_100_000));
        let many = (0..3000)
            .map(|i| format!("f{i}=x"))
            .collect::<Vec<_>>()
            .join("&");
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            (
                "1.1 MB form",
                "application/x-www-form-urlencoded",
                huge.into_bytes(),
            ),
            (
                "JSON body",
                "application/json",
                json!({"refresh-token": secret, "grant_type": "refresh_token"})
                    .to_string()
                    .into_bytes(),
            ),
            (
                "multipart body",
                "multipart/form-data; boundary=x",
                format!(
                    "--x\r\nContent-Disposition: form-data; name=\"refresh-token\"\r\n\r\n{secret}\r\n--x--\r\n"
                )
                .into_bytes(),
            ),
            (
                "invalid UTF-8",
                "application/x-www-form-urlencoded",
                vec![0xff, 0xfe, b'=', 0xc3, 0x28, b'&', 0x80],
            ),
            ("empty body", "application/x-www-form-urlencoded", Vec::new()),
            (
                "many unknown fields",
                "application/x-www-form-urlencoded",
                many.into_bytes(),
            ),
        ];
        for (what, content_type, body) in cases {
            let started = std::time::Instant::now();
            let reply = post_raw(&h, fw, TOKEN, content_type, body).await;
            assert_client_error(&reply, what);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what} is slow"
            );
            assert_not_echoed(&reply, &[secret], what);
        }
        let path = format!(
            "{TOKEN}?{}",
            query(&[("refresh-token", secret), ("grant_type", "refresh_token")])
        );
        let get = h.get(fw, &path, None).await;
        assert!(
            matches!(get.status, 404 | 405),
            "GET on the token endpoint: {} {}",
            get.status,
            get.raw_body
        );
        let put = into_reply(
            h.client()
                .put(h.url(fw, TOKEN))
                .form(&[("refresh-token", secret)])
                .send()
                .await
                .expect("answer"),
        )
        .await;
        assert!(matches!(put.status, 404 | 405), "PUT: {}", put.status);
        assert_eq!(token_hits(&h), hits, "the provider was asked");
    }
}

/// D1 variant at the server-side callback: a repeated `state` (the genuine one first or
/// second) or a repeated `code` is refused with 400 before anything is spent or sent: no token
/// request, and the genuine callback still completes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_callback_with_repeated_state_or_code_is_refused_without_spending() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, &h.url(fw, CALLBACK)).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let state = query_param(&callback, "state").unwrap_or_default();
        let iss = query_param(&callback, "iss").unwrap_or_default();
        let hits = token_hits(&h);
        for (what, pairs) in [
            (
                "state twice, genuine first",
                vec![
                    ("code", code.as_str()),
                    ("state", &state),
                    ("state", "x|forged"),
                    ("iss", &iss),
                ],
            ),
            (
                "state twice, genuine second",
                vec![
                    ("code", code.as_str()),
                    ("state", "x|forged"),
                    ("state", &state),
                    ("iss", &iss),
                ],
            ),
            (
                "code twice",
                vec![
                    ("code", "other"),
                    ("code", code.as_str()),
                    ("state", &state),
                    ("iss", &iss),
                ],
            ),
        ] {
            let reply = h
                .get(fw, &format!("{CALLBACK}?{}", query(&pairs)), None)
                .await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "{what} on {fw:?}: {}",
                reply.raw_body
            );
            assert_eq!(token_hits(&h), hits, "{what}");
            assert_not_echoed(&reply, &[&code, &handle_of(&callback)], what);
        }
        let genuine = into_reply(
            h.client()
                .get(callback.as_str())
                .send()
                .await
                .expect("answer"),
        )
        .await;
        assert_eq!(genuine.status, 200, "{}", genuine.raw_body);
    }
}

/// E variant (empty values): empty `code`, `refresh-token`, `refresh_token` with its grant
/// type, `device-code`, `device_code` with its grant type, an empty `grant_type` alone, and a
/// code grant with an empty `redirect_uri` or `code_verifier` are 400 with no provider request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_form_with_empty_values_is_refused_without_a_provider_call() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
        let code = query_param(&callback, "code").unwrap_or_default();
        let handle = handle_of(&callback);
        let hits = token_hits(&h);
        for (what, form) in [
            (
                "empty code",
                vec![
                    ("grant_type", "authorization_code"),
                    ("code", ""),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", handle.as_str()),
                ],
            ),
            ("empty refresh-token", vec![("refresh-token", "")]),
            (
                "empty refresh_token",
                vec![("grant_type", "refresh_token"), ("refresh_token", "")],
            ),
            ("empty device-code", vec![("device-code", "")]),
            (
                "empty device_code",
                vec![
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", ""),
                ],
            ),
            ("empty grant_type", vec![("grant_type", "")]),
            (
                "empty code_verifier",
                vec![
                    ("code", code.as_str()),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", ""),
                ],
            ),
            (
                "no redirect_uri",
                vec![("code", code.as_str()), ("code_verifier", handle.as_str())],
            ),
        ] {
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(reply.status, 400, "{what} on {fw:?}: {}", reply.raw_body);
            assert!(
                matches!(
                    reply.error(),
                    Some("invalid_request" | "invalid_grant" | "unsupported_grant_type")
                ),
                "{what}: {}",
                reply.raw_body
            );
            assert_eq!(token_hits(&h), hits, "{what}: the provider was asked");
        }
        assert_eq!(client_token_call(&h, fw, &callback).await.status, 200);
    }
}

// ------------------------------------------------------------------------------------------
// E1 / E3: broker refresh tokens
// ------------------------------------------------------------------------------------------

/// E3 variant: near misses of a live broker refresh token (truncated, with whitespace or a
/// newline, case-changed, one character changed, doubled, over 512 bytes), the broker's access
/// token (py-oidc-auth let it double as a refresh token), and the provider's own refresh token
/// are all 400 `invalid_grant` with no provider refresh; none of them counts as a reuse, so
/// the genuine token still refreshes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_refresh_token_near_misses_neither_refresh_nor_revoke() {
    let (h, _) = broker().await;
    for fw in FRAMEWORKS {
        let first = login(&h, fw).await;
        let warm = refresh(&h, fw, field(&first, "refresh_token")).await;
        assert_eq!(warm.status, 200, "{}", warm.raw_body);
        let leaked_provider_token = h
            .idp
            .last_token_request()
            .unwrap_or_default()
            .get("refresh_token")
            .cloned()
            .unwrap_or_default();
        assert!(!leaked_provider_token.is_empty());
        let token = field(&warm, "refresh_token").to_owned();
        let access = field(&warm, "access_token").to_owned();
        let mut changed = token.clone().into_bytes();
        changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap_or_default();
        let refreshes = h.idp.refresh_count();
        for (what, value) in [
            ("truncated by 1", token[..token.len() - 1].to_owned()),
            ("first half", token[..token.len() / 2].to_owned()),
            ("leading space", format!(" {token}")),
            ("trailing space", format!("{token} ")),
            ("trailing newline", format!("{token}\n")),
            ("tab inside", format!("{}\t{}", &token[..4], &token[4..])),
            ("upper case", token.to_uppercase()),
            ("one character changed", changed),
            ("doubled", format!("{token}{token}")),
            ("over 512 bytes", format!("{token}{}", "A".repeat(600))),
            ("the access token", access.clone()),
            (
                "the provider's refresh token",
                leaked_provider_token.clone(),
            ),
        ] {
            if value == token {
                continue;
            }
            let reply = refresh(&h, fw, &value).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_grant")),
                "{what} on {fw:?}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &[&token, &value, &access], what);
        }
        assert_eq!(
            h.idp.refresh_count(),
            refreshes,
            "a provider refresh happened"
        );
        let genuine = refresh(&h, fw, &token).await;
        assert_eq!(
            genuine.status, 200,
            "near misses must not revoke the family: {}",
            genuine.raw_body
        );
    }
}

/// E2 variant: only a refusal of the grant ends a broker session. When the provider's token
/// endpoint answers a refresh with a transient HTTP status that carries a JSON error body
/// (429 Too Many Requests, 408 Request Timeout), the session is not destroyed: like an outage,
/// the refresh is served from the stored claims (or answered 503), and once the provider is
/// back the session keeps refreshing. Every status is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_a_throttled_provider_refresh_does_not_end_the_session() {
    let (h, _) = broker().await;
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        for status in [429, 408, 503] {
            let session = login(&h, fw).await;
            h.idp.set_fault(Endpoint::Token, Fault::Status(status));
            let during = refresh(&h, fw, field(&session, "refresh_token")).await;
            h.idp.set_fault(Endpoint::Token, Fault::None);
            let next = match during.status {
                200 => field(&during, "refresh_token").to_owned(),
                _ => field(&session, "refresh_token").to_owned(),
            };
            let after = refresh(&h, fw, &next).await;
            if !matches!(during.status, 200 | 503) || after.status != 200 {
                failures.push(format!(
                    "provider {status} at refresh on {fw:?}: answered {} {:?}, then {} {:?}",
                    during.status,
                    during.error(),
                    after.status,
                    after.error()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a transient provider answer ended sessions:\n{}",
        failures.join("\n")
    );
}

/// E3 variant: reuse detection revokes exactly the family of the reused token. Another
/// session of the same user, started on the other framework, keeps refreshing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_reuse_revokes_only_its_own_family() {
    let (h, _) = broker().await;
    for (fw, other) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let a = login(&h, fw).await;
        let b = login(&h, other).await;
        let spent = field(&a, "refresh_token").to_owned();
        let next = refresh(&h, fw, &spent).await;
        assert_eq!(next.status, 200);
        let reuse = refresh(&h, other, &spent).await;
        assert_eq!((reuse.status, reuse.error()), (400, Some("invalid_grant")));
        let successor = refresh(&h, fw, field(&next, "refresh_token")).await;
        assert_eq!(
            (successor.status, successor.error()),
            (400, Some("invalid_grant")),
            "the reused family is revoked"
        );
        let unrelated = refresh(&h, other, field(&b, "refresh_token")).await;
        assert_eq!(
            unrelated.status, 200,
            "another family is untouched: {}",
            unrelated.raw_body
        );
    }
}

/// E1 variant: one refresh token presented at the same moment to axum and to actix-web (one
/// process, one broker) costs one provider refresh; both answers succeed with the same
/// successor, which is live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_concurrent_refresh_through_both_frameworks_is_one_provider_refresh() {
    let (h, _) = broker().await;
    let first = login(&h, Framework::Axum).await;
    let token = field(&first, "refresh_token").to_owned();
    let before = h.idp.refresh_count();
    h.idp
        .set_fault(Endpoint::Token, Fault::Slow(Duration::from_millis(400)));
    let (a, c) = tokio::join!(
        refresh(&h, Framework::Axum, &token),
        refresh(&h, Framework::Actix, &token)
    );
    h.idp.set_fault(Endpoint::Token, Fault::None);
    assert_eq!((a.status, c.status), (200, 200), "{a:?} / {c:?}");
    assert_eq!(h.idp.refresh_count(), before + 1);
    assert_eq!(field(&a, "refresh_token"), field(&c, "refresh_token"));
    let next = refresh(&h, Framework::Actix, field(&a, "refresh_token")).await;
    assert_eq!(next.status, 200, "{}", next.raw_body);
}

/// E3 variant under concurrency: a spent token replayed through both frameworks at once is
/// refused on both; a replay racing the legitimate refresh of the successor still revokes the
/// whole family, including any token minted by that race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_concurrent_replays_and_a_racing_refresh_end_with_the_family_revoked() {
    let (h, _) = broker().await;
    let first = login(&h, Framework::Axum).await;
    let spent = field(&first, "refresh_token").to_owned();
    let second = refresh(&h, Framework::Axum, &spent).await;
    assert_eq!(second.status, 200);
    let (a, c) = tokio::join!(
        refresh(&h, Framework::Axum, &spent),
        refresh(&h, Framework::Actix, &spent)
    );
    for reply in [&a, &c] {
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("invalid_grant")),
            "{}",
            reply.raw_body
        );
    }
    assert_eq!(
        refresh(&h, Framework::Actix, field(&second, "refresh_token"))
            .await
            .error(),
        Some("invalid_grant")
    );

    for _ in 0..5 {
        let session = login(&h, Framework::Actix).await;
        let spent = field(&session, "refresh_token").to_owned();
        let next = refresh(&h, Framework::Actix, &spent).await;
        assert_eq!(next.status, 200);
        let successor = field(&next, "refresh_token").to_owned();
        let (replay, legit) = tokio::join!(
            refresh(&h, Framework::Axum, &spent),
            refresh(&h, Framework::Actix, &successor)
        );
        assert_eq!(replay.error(), Some("invalid_grant"), "{}", replay.raw_body);
        if legit.status == 200 {
            let late = refresh(&h, Framework::Axum, field(&legit, "refresh_token")).await;
            assert_eq!(
                (late.status, late.error()),
                (400, Some("invalid_grant")),
                "a token minted while the family was revoked survives: {}",
                late.raw_body
            );
        } else {
            assert_eq!(legit.error(), Some("invalid_grant"), "{}", legit.raw_body);
        }
    }
}

// ------------------------------------------------------------------------------------------
// E6 / E8: broker device flow
// ------------------------------------------------------------------------------------------

/// E6/E8 variants across frameworks: the polling pace of a device code started on one
/// framework is enforced on the other (`slow_down` with no provider request); a device code
/// redeemed on one framework is `invalid_grant` on the other; truncated or padded device codes
/// are plain 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e6_e8_device_pace_and_redemption_are_shared_by_both_frameworks() {
    let (h, _) = broker().await;
    for (fw, other) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        h.idp.set_device_interval(Some(5));
        let start = h.post_form(fw, DEVICE, &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let code = field(&start, "device_code").to_owned();
        let first = h.post_form(fw, TOKEN, &[("device-code", &code)]).await;
        assert!(
            matches!(first.error(), Some("authorization_pending" | "slow_down")),
            "{}",
            first.raw_body
        );
        let hits = token_hits(&h);
        let fast = h.post_form(other, TOKEN, &[("device_code", &code)]).await;
        assert_eq!((fast.status, fast.error()), (400, Some("slow_down")));
        assert_eq!(token_hits(&h), hits, "slow_down is answered here");
        h.idp.set_device_interval(Some(0));

        let start = h.post_form(fw, DEVICE, &[]).await;
        let code = field(&start, "device_code").to_owned();
        assert!(h.idp.approve_device(field(&start, "user_code")));
        for (what, near) in [
            ("truncated", code[..code.len() - 1].to_owned()),
            ("padded", format!("{code} ")),
            ("upper case", code.to_uppercase()),
        ] {
            if near == code {
                continue;
            }
            let reply = h.post_form(other, TOKEN, &[("device-code", &near)]).await;
            assert_client_error(&reply, what);
            assert!(reply.body.get("access_token").is_none(), "{what}");
        }
        let done = h.post_form(fw, TOKEN, &[("device-code", &code)]).await;
        assert_eq!(done.status, 200, "{}", done.raw_body);
        let again = h.post_form(other, TOKEN, &[("device-code", &code)]).await;
        assert_eq!(
            (again.status, again.error()),
            (400, Some("invalid_grant")),
            "{}",
            again.raw_body
        );
    }
}

// ------------------------------------------------------------------------------------------
// E9-E12: token exchange
// ------------------------------------------------------------------------------------------

/// E9 variant: `subject_token_type` and `requested_token_type` other than access token / JWT
/// (ID token, refresh token, SAML, unknown, case-changed) are 400 `invalid_request`; an
/// exchange never issues a refresh token and never calls the provider's token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e9_exchange_token_type_variants_are_refused() {
    let (h, _) = broker().await;
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    let hits = token_hits(&h);
    for fw in FRAMEWORKS {
        for subject_type in [
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:saml2",
            "URN:IETF:PARAMS:OAUTH:TOKEN-TYPE:ACCESS_TOKEN",
            "access_token",
            "urn:ietf:params:oauth:token-type:access_token ",
        ] {
            let form = [
                ("grant_type", EXCHANGE_GRANT),
                ("subject_token", subject.as_str()),
                ("subject_token_type", subject_type),
            ];
            let reply = exchange(&h, fw, &form, true).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "subject_token_type {subject_type:?}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &[&subject], subject_type);
        }
        for requested in [
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:example:unknown",
            "URN:IETF:PARAMS:OAUTH:TOKEN-TYPE:ACCESS_TOKEN",
        ] {
            let reply = exchange(
                &h,
                fw,
                &exchange_form(&subject, &[("requested_token_type", requested)]),
                true,
            )
            .await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "requested_token_type {requested:?}: {}",
                reply.raw_body
            );
        }
        let ok = exchange(&h, fw, &exchange_form(&subject, &[]), true).await;
        assert_eq!(ok.status, 200, "{}", ok.raw_body);
        assert_eq!(
            field(&ok, "refresh_token"),
            "",
            "an exchange issues no refresh token"
        );
    }
    assert_eq!(token_hits(&h), hits);
}

/// E10 variant: subject tokens that are not access tokens for this server are 400
/// `invalid_request`: a broker refresh token, an ID token of the provider (aud = client id),
/// a token expired beyond the leeway and one expired *within* it (a minted token must not
/// outlive its subject), a not-yet-valid one, a token this server minted for another audience
/// (`downstream`), a token claiming the broker's issuer but signed by the provider, and the
/// genuine token with whitespace around it. None is echoed; the provider's token endpoint is
/// never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e10_exchange_subject_token_variants_are_refused() {
    let (h, _) = broker().await;
    let genuine = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    let session = login(&h, Framework::Axum).await;
    let downstream = exchange(
        &h,
        Framework::Axum,
        &exchange_form(&genuine, &[("audience", "downstream")]),
        true,
    )
    .await;
    assert_eq!(downstream.status, 200, "{}", downstream.raw_body);
    let hits = token_hits(&h);
    let subjects: Vec<(&str, String)> = vec![
        (
            "broker refresh token",
            field(&session, "refresh_token").to_owned(),
        ),
        (
            "provider ID token",
            h.idp
                .token()
                .audience("test-client")
                .claim("azp", json!("test-client"))
                .claim("nonce", json!("n-0123456789"))
                .sign(),
        ),
        (
            "expired beyond the leeway",
            h.idp.token().audience(AUDIENCE).expires_in(-300).sign(),
        ),
        (
            "expired within the leeway",
            h.idp.token().audience(AUDIENCE).expires_in(-20).sign(),
        ),
        (
            "not yet valid",
            h.idp
                .token()
                .audience(AUDIENCE)
                .claim("nbf", json!(SystemClock.now() + 3600))
                .sign(),
        ),
        (
            "minted for downstream",
            field(&downstream, "access_token").to_owned(),
        ),
        (
            "broker issuer, provider signature",
            h.idp
                .token()
                .audience(BROKER_AUDIENCE)
                .claim("iss", json!(BROKER_AUDIENCE))
                .sign(),
        ),
        ("leading space", format!(" {genuine}")),
        ("trailing newline", format!("{genuine}\n")),
        ("two tokens", format!("{genuine} {genuine}")),
    ];
    for fw in FRAMEWORKS {
        for (what, subject) in &subjects {
            let reply = exchange(&h, fw, &exchange_form(subject, &[]), true).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_request")),
                "{what} on {fw:?}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &[subject.trim()], what);
        }
    }
    assert_eq!(
        token_hits(&h),
        hits,
        "an exchange asked the provider's token endpoint"
    );
}

/// E11 variant: audience near misses (case, whitespace, prefix/suffix, the provider's
/// audience, a URL form) and a disallowed `resource` are `invalid_target`; a repeated
/// `audience` with one allowed and one disallowed value (either order) is never a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e11_exchange_audience_near_misses_are_invalid_target() {
    let (h, _) = broker().await;
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    for fw in FRAMEWORKS {
        for (name, value) in [
            ("audience", "Downstream"),
            ("audience", "downstream "),
            ("audience", " downstream"),
            ("audience", "downstream2"),
            ("audience", "downstrea"),
            ("audience", "downstream,elsewhere"),
            ("audience", "downstream elsewhere"),
            ("audience", AUDIENCE),
            ("audience", "https://downstream/"),
            ("resource", "elsewhere"),
            ("resource", "https://evil.example/api"),
        ] {
            let reply = exchange(&h, fw, &exchange_form(&subject, &[(name, value)]), true).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_target")),
                "{name}={value:?} on {fw:?}: {}",
                reply.raw_body
            );
        }
        for pair in [
            [("audience", "downstream"), ("audience", "elsewhere")],
            [("audience", "elsewhere"), ("audience", "downstream")],
        ] {
            let reply = exchange(&h, fw, &exchange_form(&subject, &pair), true).await;
            assert!(
                reply.status == 400
                    && matches!(reply.error(), Some("invalid_target" | "invalid_request")),
                "{pair:?} on {fw:?}: {} {}",
                reply.status,
                reply.raw_body
            );
        }
    }
}

/// E11 variant: every requested target must be allowed. An empty `audience` must not hide a
/// disallowed `resource`, and a disallowed `resource` next to an allowed `audience` is not
/// silently dropped: both are `invalid_target` (RFC 8693 section 2.2.2, RFC 8707). Every case
/// is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e11_every_requested_target_must_be_allowed() {
    let (h, _) = broker().await;
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        for extra in [
            [("audience", ""), ("resource", "https://evil.example/api")],
            [
                ("audience", "downstream"),
                ("resource", "https://evil.example/api"),
            ],
            [
                ("resource", "https://evil.example/api"),
                ("audience", BROKER_AUDIENCE),
            ],
        ] {
            let reply = exchange(&h, fw, &exchange_form(&subject, &extra), true).await;
            if (reply.status, reply.error()) != (400, Some("invalid_target")) {
                let aud = jwt(field(&reply, "access_token")).1["aud"].clone();
                failures.push(format!(
                    "{extra:?} on {fw:?}: {} {:?}, minted aud {aud}",
                    reply.status,
                    reply.error()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "disallowed targets ignored:\n{}",
        failures.join("\n")
    );
}

/// E12 variant: the scope is never widened by near misses (case change, a tab instead of a
/// space, a prefix of a held scope, a held scope plus another) and an exchanged token never
/// outlives its subject token; an exchange of an exchanged token keeps the narrowed scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e12_exchange_scope_and_lifetime_are_never_widened() {
    let (h, _) = broker().await;
    let subject = h
        .idp
        .token()
        .audience(AUDIENCE)
        .scope("openid profile")
        .expires_in(90)
        .sign();
    let (_, subject_claims) = jwt(&subject);
    let subject_exp = subject_claims["exp"].as_i64().unwrap_or(0);
    for fw in FRAMEWORKS {
        for scope in [
            "OPENID",
            "openid\tprofile",
            "open",
            "openid profile email",
            "openid,profile",
            "profile openid admin",
        ] {
            let reply = exchange(&h, fw, &exchange_form(&subject, &[("scope", scope)]), true).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_scope")),
                "scope {scope:?} on {fw:?}: {}",
                reply.raw_body
            );
        }
        let narrowed = exchange(
            &h,
            fw,
            &exchange_form(&subject, &[("scope", "profile")]),
            true,
        )
        .await;
        assert_eq!(narrowed.status, 200, "{}", narrowed.raw_body);
        assert_eq!(narrowed.body["scope"], "profile");
        let (_, claims) = jwt(field(&narrowed, "access_token"));
        assert!(
            claims["exp"].as_i64().unwrap_or(i64::MAX) <= subject_exp,
            "the exchanged token outlives its subject: {} > {subject_exp}",
            claims["exp"]
        );
        let again = exchange(
            &h,
            fw,
            &exchange_form(field(&narrowed, "access_token"), &[]),
            true,
        )
        .await;
        assert_eq!(again.status, 200, "{}", again.raw_body);
        assert_eq!(
            again.body["scope"], "profile",
            "re-exchange keeps the narrowed scope"
        );
        let wider = exchange(
            &h,
            fw,
            &exchange_form(field(&narrowed, "access_token"), &[("scope", "openid")]),
            true,
        )
        .await;
        assert_eq!((wider.status, wider.error()), (400, Some("invalid_scope")));
    }
}

/// E12 variant: client authentication near misses are 401 `invalid_client` with nothing
/// minted and the tried secret not echoed: secret case-changed, with a trailing or leading
/// space, a prefix of it, the id case-changed or padded, an empty id, malformed Basic values
/// (bad base64, no colon, empty, scheme only, non-UTF-8 bytes), a wrong Basic header next to
/// correct form credentials, and form credentials without a secret or with a wrong one. A
/// failed Basic attempt is challenged with `Basic`. The correct form credentials
/// (`client_secret_post`) work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e12_exchange_client_authentication_near_misses_are_invalid_client() {
    let (h, _) = broker().await;
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    let form = exchange_form(&subject, &[]);
    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let headers: Vec<(&str, Vec<u8>)> = vec![
        ("secret upper case", basic("svc", "SVC-SECRET").into_bytes()),
        (
            "secret trailing space",
            basic("svc", "svc-secret ").into_bytes(),
        ),
        (
            "secret leading space",
            basic("svc", " svc-secret").into_bytes(),
        ),
        ("secret prefix", basic("svc", "svc-secre").into_bytes()),
        ("secret extended", basic("svc", "svc-secretx").into_bytes()),
        (
            "secret with NUL",
            basic("svc", "svc-secret\u{0}").into_bytes(),
        ),
        ("id upper case", basic("SVC", "svc-secret").into_bytes()),
        (
            "id trailing space",
            basic("svc ", "svc-secret").into_bytes(),
        ),
        ("empty id", basic("", "svc-secret").into_bytes()),
        (
            "app client without secret",
            basic("test-client", "").into_bytes(),
        ),
        ("bad base64", b"Basic !!!not-base64!!!".to_vec()),
        (
            "no colon",
            format!("Basic {}", STANDARD.encode("svcsvc-secret")).into_bytes(),
        ),
        ("empty credentials", b"Basic ".to_vec()),
        ("scheme only", b"Basic".to_vec()),
        (
            "non-UTF-8 credentials",
            [
                b"Basic ".as_slice(),
                STANDARD.encode([0xff, b':', 0xfe]).as_bytes(),
            ]
            .concat(),
        ),
        ("non-UTF-8 header", b"Basic \xff\xfe".to_vec()),
    ];
    let hits = token_hits(&h);
    for fw in FRAMEWORKS {
        for (what, header) in &headers {
            let value = reqwest::header::HeaderValue::from_bytes(header).expect("header value");
            let response = h
                .client()
                .post(h.url(fw, TOKEN))
                .header("authorization", value)
                .form(&form)
                .send()
                .await
                .expect("answer");
            let reply = into_reply(response).await;
            assert_eq!(
                (reply.status, reply.error()),
                (401, Some("invalid_client")),
                "{what} on {fw:?}: {}",
                reply.raw_body
            );
            assert!(
                reply
                    .challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Basic")),
                "{what}: challenge {:?}",
                reply.challenge
            );
            assert!(reply.body.get("access_token").is_none());
            assert_not_echoed(&reply, &["svc-secret", "SVC-SECRET", &subject], what);
        }
        // A wrong Basic header is not rescued by correct form credentials.
        let mut both = form.clone();
        both.extend([("client_id", "svc"), ("client_secret", "svc-secret")]);
        let reply = exchange_as(&h, fw, &both, Some("guess")).await;
        assert_eq!((reply.status, reply.error()), (401, Some("invalid_client")));
        for (what, creds) in [
            ("form id without secret", vec![("client_id", "svc")]),
            (
                "form secret without id",
                vec![("client_secret", "svc-secret")],
            ),
            (
                "form wrong secret",
                vec![("client_id", "svc"), ("client_secret", "svc-secret ")],
            ),
            (
                "form empty secret",
                vec![("client_id", "svc"), ("client_secret", "")],
            ),
        ] {
            let mut with = form.clone();
            with.extend(creds);
            let reply = exchange(&h, fw, &with, false).await;
            assert_eq!(
                (reply.status, reply.error()),
                (401, Some("invalid_client")),
                "{what}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &["svc-secret"], what);
        }
        let mut post = form.clone();
        post.extend([("client_id", "svc"), ("client_secret", "svc-secret")]);
        let ok = exchange(&h, fw, &post, false).await;
        assert_eq!(ok.status, 200, "client_secret_post: {}", ok.raw_body);
    }
    assert_eq!(token_hits(&h), hits);
}

/// E12 variant: two `Authorization` headers at the token endpoint are ambiguous (the bearer
/// guard answers 400 for the same); a token exchange must not pick one of them and succeed:
/// 400 `invalid_request` or 401 `invalid_client`, in either order of the right and the wrong
/// credentials. Every case is tried before the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e12_two_authorization_headers_are_not_resolved_silently() {
    let (h, _) = broker().await;
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    let form = exchange_form(&subject, &[]);
    let right = format!("Basic {}", STANDARD.encode("svc:svc-secret"));
    let wrong = format!("Basic {}", STANDARD.encode("svc:guess"));
    let mut failures = Vec::new();
    for fw in FRAMEWORKS {
        for (order, first, second) in [
            ("right first", &right, &wrong),
            ("wrong first", &wrong, &right),
        ] {
            let mut headers = reqwest::header::HeaderMap::new();
            for value in [first, second] {
                headers.append(
                    "authorization",
                    reqwest::header::HeaderValue::from_str(value).expect("header"),
                );
            }
            let response = h
                .client()
                .post(h.url(fw, TOKEN))
                .headers(headers)
                .form(&form)
                .send()
                .await
                .expect("answer");
            let reply = into_reply(response).await;
            let refused = (reply.status == 400 && reply.error() == Some("invalid_request"))
                || (reply.status == 401 && reply.error() == Some("invalid_client"));
            if !refused {
                failures.push(format!(
                    "{order} on {fw:?}: {} {:?}",
                    reply.status,
                    reply.error()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "two Authorization headers:\n{}",
        failures.join("\n")
    );
}

/// E12 variant: outside broker mode, a token exchange (even with credentials the provider's
/// client would have) is `unsupported_grant_type`, and nothing reaches the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e12_exchange_without_broker_mode_is_unsupported() {
    let h = harness().await;
    let subject = h.idp.token().audience(AUDIENCE).sign();
    for fw in FRAMEWORKS {
        let reply = h
            .post_form(
                fw,
                TOKEN,
                &[
                    ("grant_type", EXCHANGE_GRANT),
                    ("subject_token", &subject),
                    ("subject_token_type", ACCESS_TYPE),
                    ("client_id", "test-client"),
                    ("client_secret", "anything"),
                ],
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("unsupported_grant_type")),
            "{}",
            reply.raw_body
        );
        assert_not_echoed(&reply, &[&subject, "anything"], "exchange");
    }
    assert_eq!(h.idp.hits(Endpoint::Token), 0);
}

// ------------------------------------------------------------------------------------------
// F3: federation trust list
// ------------------------------------------------------------------------------------------

/// A TCP listener on loopback that counts the connections it receives and closes them.
async fn counting_listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, count)
}

/// F3 variant: tokens whose `iss` is a near miss of a trusted peer (scheme or host case,
/// `localhost` for `127.0.0.1`, an extra path, user info, a doubled slash, a query, a fragment,
/// surrounding whitespace) are not the peer's: 401 at a protected route and 400 at token
/// exchange, and the peer's address receives no connection at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_issuer_near_misses_of_a_trusted_peer_cause_no_outbound_request() {
    let (peer, connections) = counting_listener().await;
    let idp = provider().await;
    let h = serve_broker(
        idp,
        Arc::new(MemoryStore::new()),
        |c| c.trusted_issuers([peer.clone()]),
        None,
    )
    .await;
    let near_misses = [
        peer.to_uppercase(),
        peer.replace("http://", "HTTP://"),
        peer.replace("127.0.0.1", "localhost"),
        peer.replace("127.0.0.1", "127.0.0.01"),
        format!("{peer}/x"),
        format!("{peer}//"),
        format!("{peer}?"),
        format!("{peer}#"),
        peer.replace("http://", "http://user@"),
        peer.replace("http://", "https://"),
        format!(" {peer}"),
        format!("{peer} "),
    ];
    for iss in &near_misses {
        let token = h
            .idp
            .token()
            .claim("iss", json!(iss))
            .audience(BROKER_AUDIENCE)
            .sign();
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, "/me", &token).await;
            assert_eq!(
                reply.status, 401,
                "iss {iss:?} on {fw:?}: {}",
                reply.raw_body
            );
            let exchanged = exchange(&h, fw, &exchange_form(&token, &[]), true).await;
            assert_eq!(
                (exchanged.status, exchanged.error()),
                (400, Some("invalid_request")),
                "iss {iss:?}: {}",
                exchanged.raw_body
            );
        }
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a token naming an untrusted issuer caused a request to the peer's address"
    );
    // Control: the exact issuer is trusted, so its token does reach the peer's address (which
    // closes the connection: no keys, no 200).
    let exact = h
        .idp
        .token()
        .claim("iss", json!(peer))
        .audience(BROKER_AUDIENCE)
        .sign();
    let reply = h.bearer(Framework::Axum, "/me", &exact).await;
    assert_ne!(reply.status, 200);
    assert!(
        connections.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the counting listener works"
    );
}

// ------------------------------------------------------------------------------------------
// F5: store inputs reached through HTTP
// ------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    format!("{prefix}_{}", hex(&bytes))
}

fn run(command: &mut std::process::Command) {
    let output = command.output().expect("the database tool runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A SQL backend for one test: its store URL and how to drop what it created.
struct Backend {
    name: &'static str,
    url: String,
    drop: Option<Box<dyn FnOnce()>>,
}

/// SQLite (in memory) always; PostgreSQL and MariaDB when their variables are set.
fn sql_backends() -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "sqlite",
        url: "sqlite::memory:".to_owned(),
        drop: None,
    }];
    match std::env::var("OIDC_AUTH_TEST_POSTGRES_URL") {
        Ok(url) => {
            let schema = unique("oidc_f5");
            run(std::process::Command::new("psql").args([
                url.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("CREATE SCHEMA {schema}"),
            ]));
            let separator = if url.contains('?') { '&' } else { '?' };
            let store_url = format!("{url}{separator}options=-csearch_path%3D{schema}");
            out.push(Backend {
                name: "postgres",
                url: store_url,
                drop: Some(Box::new(move || {
                    run(std::process::Command::new("psql").args([
                        url.as_str(),
                        "-c",
                        &format!("DROP SCHEMA {schema} CASCADE"),
                    ]));
                })),
            });
        }
        Err(_) => println!("postgres skipped: OIDC_AUTH_TEST_POSTGRES_URL not set"),
    }
    match std::env::var("OIDC_AUTH_TEST_MYSQL_URL") {
        Ok(url) => {
            let parsed = Url::parse(&url).expect("a mysql:// URL");
            let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
            let port = parsed.port().unwrap_or(3306).to_string();
            let user = if parsed.username().is_empty() {
                "root".to_owned()
            } else {
                parsed.username().to_owned()
            };
            let password = parsed.password().map(str::to_owned);
            let mysql = move |sql: String| {
                let mut command = std::process::Command::new("mysql");
                command.args(["-h", &host, "-P", &port, "-u", &user, "--protocol=tcp"]);
                if let Some(password) = &password {
                    command.env("MYSQL_PWD", password);
                }
                command.args(["-e", &sql]);
                run(&mut command);
            };
            let database = unique("oidc_f5");
            mysql(format!("CREATE DATABASE {database}"));
            let mut store_url = parsed.clone();
            store_url.set_path(&format!("/{database}"));
            out.push(Backend {
                name: "mysql",
                url: store_url.to_string(),
                drop: Some(Box::new(move || {
                    mysql(format!("DROP DATABASE {database}"));
                })),
            });
        }
        Err(_) => println!("mysql skipped: OIDC_AUTH_TEST_MYSQL_URL not set"),
    }
    out
}

/// F5 variant through HTTP: hostile identity values from the provider (SQL quotes and
/// comments, LIKE wildcards, a NUL byte, backslashes, long Unicode, an RTL override) as the
/// user's `sub`, username and name reach the broker store at login. Each login answers 200 or
/// 400 (never 5xx); a 200 session holds the values verbatim (the minted token and the token
/// of the next refresh, read back from the store, carry them unchanged). Afterwards the schema
/// is intact: an ordinary login and refresh still work. SQLite always, PostgreSQL and MariaDB
/// when their variables are set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_hostile_identity_values_through_login_are_stored_verbatim_or_refused() {
    let long_unicode = "é漢🦀\u{200d}".repeat(120);
    let hostile = [
        "'; DROP TABLE oidc_auth_sessions;--",
        "alice' OR '1'='1",
        "%_%\\%\\_",
        "a\u{0}b",
        "back\\slash\\\\'\"",
        long_unicode.as_str(),
        "\u{202e}nimda",
        "$1 $$ ? :name @p1",
    ];
    for backend in sql_backends() {
        let store = store::connect(&backend.url)
            .await
            .unwrap_or_else(|e| panic!("{} store: {e}", backend.name));
        let h = serve_broker(provider().await, store, |c| c, None).await;
        let mut stored = 0;
        for value in hostile {
            for fw in FRAMEWORKS {
                h.idp.set_user(
                    value,
                    json!({"preferred_username": value, "name": value, "email": "x@example.com"}),
                );
                let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
                let reply = client_token_call(&h, fw, &callback).await;
                let shown = value.chars().take(40).collect::<String>();
                assert!(
                    matches!(reply.status, 200 | 400),
                    "{} {shown:?} on {fw:?}: {} {}",
                    backend.name,
                    reply.status,
                    reply.raw_body
                );
                println!("{} {shown:?} on {fw:?}: {}", backend.name, reply.status);
                if reply.status != 200 {
                    continue;
                }
                stored += 1;
                let (_, claims) = jwt(field(&reply, "access_token"));
                assert_eq!(claims["sub"], value, "{} {shown:?}", backend.name);
                assert_eq!(claims["preferred_username"], value);
                let next = refresh(&h, fw, field(&reply, "refresh_token")).await;
                assert_eq!(
                    next.status, 200,
                    "{} {shown:?}: refresh {}",
                    backend.name, next.raw_body
                );
                let (_, claims) = jwt(field(&next, "access_token"));
                assert_eq!(claims["sub"], value, "{} {shown:?} read back", backend.name);
                assert_eq!(claims["preferred_username"], value);
            }
        }
        assert!(
            stored >= 2 * 6,
            "{}: only {stored} hostile logins were stored",
            backend.name
        );
        h.idp.set_user(
            "alice",
            json!({"preferred_username": "alice", "email": "alice@example.com"}),
        );
        for fw in FRAMEWORKS {
            let ordinary = login(&h, fw).await;
            let next = refresh(&h, fw, field(&ordinary, "refresh_token")).await;
            assert_eq!(
                next.status, 200,
                "{}: the schema survived: {}",
                backend.name, next.raw_body
            );
        }
        drop(h);
        if let Some(drop_backend) = backend.drop {
            drop_backend();
        }
    }
}
