//! Variants of SECURITY.md groups D-F (login flow endpoints, refresh, device, exchange, broker)
//! beyond the listed cases, on both frameworks.
//!
//! Each test names the class it extends. Every refusal is checked for its status and RFC error
//! code, for the provider calls it must not cause (hit counters of the mock provider), and for
//! what it must not echo.

use std::future::Future;
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
    refresh, serve_broker, sql_backends,
};
use oidc_auth_tests::jose::{pem, published_jwk, rsa_components, rsa_public_der};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, assert_invalid_token,
    assert_not_echoed, browser_login, client_code_flow, client_token_call, flow_provider,
    into_reply, last_token_request_field, location, query_param,
};
use reqwest::header::HeaderValue;
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
/// Both orders of the two frameworks: something done on the first, checked on the second.
const FRAMEWORK_PAIRS: [(Framework, Framework); 2] = [
    (Framework::Axum, Framework::Actix),
    (Framework::Actix, Framework::Axum),
];

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// A mock provider (access tokens for `api`, no device pacing) and both frameworks, with a
/// configured login and logout allow-list.
async fn harness() -> Harness {
    harness_on(None).await
}

async fn harness_on(clock: Option<ManualClock>) -> Harness {
    Harness::with(flow_provider().await, allow_lists, clock).await
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

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `path` with `pairs` as its query string.
fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    format!("{path}?{}", query(pairs))
}

/// GETs our `/login` with `pairs` as its query (redirects are not followed).
async fn get_login(h: &Harness, fw: Framework, pairs: &[(&str, &str)]) -> Reply {
    h.get(fw, &with_query(LOGIN, pairs), None).await
}

/// Our server-side callback with the query the provider sent to `callback`.
fn callback_path(callback: &Url) -> String {
    format!("{CALLBACK}?{}", callback.query().unwrap_or_default())
}

/// The absolute `Location` of a redirect.
fn redirect_target(reply: &Reply) -> Url {
    Url::parse(reply.location.as_deref().unwrap_or_default()).expect("Location")
}

/// The provider's redirect at the end of a browser login, and what a client takes from it.
struct Callback {
    url: Url,
    code: String,
    state: String,
    /// The sealed handle at the end of `state`.
    handle: String,
}

impl Callback {
    fn of(url: Url) -> Self {
        let code = query_param(&url, "code").unwrap_or_default();
        let state = query_param(&url, "state").unwrap_or_default();
        let handle = state.rsplit('|').next().unwrap_or_default().to_owned();
        Self {
            url,
            code,
            state,
            handle,
        }
    }

    /// The client's code-grant form for this login ([`code_form`] with the handle as
    /// `code_verifier`), followed by `extra` fields.
    fn code_form<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        code_form(&self.code, &self.handle, extra)
    }
}

/// The browser part of a login to `redirect_uri` (see [`browser_login`]), taken apart.
async fn login_to(h: &Harness, fw: Framework, redirect_uri: &str) -> Callback {
    let (_, callback) = browser_login(h, fw, redirect_uri).await;
    Callback::of(callback)
}

fn token_hits(h: &Harness) -> usize {
    h.idp.hits(Endpoint::Token)
}

/// Awaits `call` and counts the token requests the provider received meanwhile.
async fn counting_token_requests(h: &Harness, call: impl Future<Output = Reply>) -> (Reply, usize) {
    let before = token_hits(h);
    let reply = call.await;
    (reply, token_hits(h) - before)
}

/// A code-grant form as py-oidc-auth-client sends it (`code`, `redirect_uri` [`LOOPBACK`],
/// `grant_type`, `code_verifier`), followed by `extra` fields.
fn code_form<'a>(
    code: &'a str,
    verifier: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("code", code),
        ("redirect_uri", LOOPBACK),
        ("grant_type", "authorization_code"),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    form
}

/// POSTs the [`code_form`] with `verifier` as `code_verifier` (and `extra` fields) to the
/// token endpoint.
async fn code_call(
    h: &Harness,
    fw: Framework,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> Reply {
    h.post_form(fw, TOKEN, &code_form(code, verifier, extra))
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

/// POSTs `form` to the token endpoint with one `Authorization` header for each of `values`, in
/// that order.
async fn post_token_with_authorization(
    h: &Harness,
    fw: Framework,
    values: &[HeaderValue],
    form: &[(&str, &str)],
) -> Reply {
    let mut headers = reqwest::header::HeaderMap::new();
    for value in values {
        headers.append("authorization", value.clone());
    }
    let response = h
        .client()
        .post(h.url(fw, TOKEN))
        .headers(headers)
        .form(form)
        .send()
        .await
        .expect("answer");
    into_reply(response).await
}

/// Redeems a device code with the client's `device-code` field.
async fn redeem_device_code(h: &Harness, fw: Framework, code: &str) -> Reply {
    h.post_form(fw, TOKEN, &[("device-code", code)]).await
}

/// An access token of the provider for this server with scope `openid`: a subject token.
fn subject_token(h: &Harness) -> String {
    h.idp.token().audience(AUDIENCE).scope("openid").sign()
}

/// A token exchange of `subject` with `extra` fields, authenticated as the exchange client.
async fn exchange_subject(
    h: &Harness,
    fw: Framework,
    subject: &str,
    extra: &[(&str, &str)],
) -> Reply {
    exchange(h, fw, &exchange_form(subject, extra), true).await
}

/// Asserts `reply` is `status` with the RFC error code `error`.
fn assert_refusal(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, Some(error)),
        "{what}: {}",
        reply.raw_body
    );
}

/// Asserts `reply` is a 400 (with the RFC error code `error` when one is given) and that the
/// provider's token endpoint still has the `hits` it had before the refused request.
fn assert_refused_unasked(
    h: &Harness,
    hits: usize,
    reply: &Reply,
    error: Option<&str>,
    what: &str,
) {
    match error {
        Some(error) => assert_refusal(reply, 400, error, what),
        None => assert_eq!(reply.status, 400, "{what}: {}", reply.raw_body),
    }
    assert_eq!(token_hits(h), hits, "{what}: the provider was asked");
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

/// Asserts a 400 `invalid_request` without a `Location`.
fn assert_invalid_request_without_redirect(reply: &Reply, what: &str) {
    assert_refusal(reply, 400, "invalid_request", what);
    assert!(reply.location.is_none(), "{what}");
}

/// Asserts the body contains none of `markers` (short pieces of a hostile input, such as
/// `evil` or `<script`).
fn assert_not_reflected(reply: &Reply, markers: &[&str], what: &str) {
    for marker in markers {
        assert!(
            !reply.raw_body.contains(marker),
            "{what} reflected {marker:?}: {}",
            reply.raw_body
        );
    }
}

/// The failures of a test that tries every case before its verdict.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    /// Notes a failure of `case` unless `ok`: the status and error code of `reply`, then
    /// `detail`.
    fn check(&mut self, ok: bool, case: &str, reply: &Reply, detail: &str) {
        if !ok {
            self.0.push(format!(
                "{case}: {} {:?}{detail}",
                reply.status,
                reply.error()
            ));
        }
    }

    /// [`Failures::check`] that also fails the case when the request caused `asked` (non-zero)
    /// provider token requests.
    fn check_unasked(&mut self, ok: bool, case: &str, reply: &Reply, asked: usize) {
        let detail = format!(", {asked} provider token request(s)");
        self.check(ok && asked == 0, case, reply, &detail);
    }

    /// Fails with `title` and every noted failure, one a line, when there are any.
    fn assert_none(&self, title: &str) {
        assert!(self.0.is_empty(), "{title}:\n{}", self.0.join("\n"));
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
            let reply = get_login(&h, fw, &[("redirect_uri", redirect)]).await;
            let what = format!("{fw:?} {redirect:?}");
            assert_invalid_request_without_redirect(&reply, &what);
            assert_not_reflected(&reply, &["evil", "alert"], &what);
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
            let reply = h.get(fw, &format!("{LOGIN}?{q}"), None).await;
            let what = &q[..q.len().min(120)];
            assert_client_error(&reply, what);
            assert!(reply.location.is_none(), "{what}");
            assert_not_reflected(&reply, &["evil"], what);
            assert_ne!(reply.status, 302);
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
            let reply = get_login(&h, fw, &[("redirect_uri", redirect)]).await;
            assert_eq!(reply.status, 302, "{redirect}: {}", reply.raw_body);
            let location = redirect_target(&reply);
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
        let login = login_to(&h, fw, LOOPBACK).await;
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
                        ("code", &login.code),
                        ("redirect_uri", other),
                        ("code_verifier", &login.handle),
                    ],
                )
                .await;
            assert_refused_unasked(&h, hits, &reply, None, other);
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
        let reply = h.get(fw, &format!("{LOGIN}?{q}"), None).await;
        if reply.status == 302 {
            let location = redirect_target(&reply);
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
            assert_eq!(reply.status, 400, "{}", reply.raw_body);
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
            let reply = get_login(&h, fw, &pairs).await;
            assert_invalid_request_without_redirect(&reply, &format!("{extra:?}"));
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
        let Callback {
            url: callback,
            code,
            state,
            handle,
        } = login_to(&h, fw, LOOPBACK).await;
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
            let reply = code_call(&h, fw, &code, verifier, &[]).await;
            assert_refused_unasked(&h, hits, &reply, None, &format!("{fw:?} {what}"));
            assert_not_echoed(&reply, &handle, &[&code]);
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
        let Callback { code, state, .. } = Callback::of(callback);
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
            let reply = code_call(&h, fw, &code, &verifier, &[]).await;
            assert_refused_unasked(&h, hits, &reply, None, what);
        }
    }
}

/// D1 variant, client-side PKCE mixed with the handle: for a login that brought its own
/// `code_challenge`, the handle is not a verifier; the client's verifier needs that login's
/// `state` (not none, not another login's); a wrong verifier is refused; none of these reaches
/// the provider, and none spends the login, which then completes with the right verifier. The
/// server-side callback refuses such a login too.
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
            let path = with_query(
                LOGIN,
                &[
                    ("redirect_uri", LOOPBACK),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            );
            let authorize = location(h, &h.url(fw, &path)).await;
            assert_eq!(
                query_param(&authorize, "code_challenge").as_deref(),
                Some(challenge.as_str())
            );
            Callback::of(location(h, authorize.as_str()).await)
        }
    };
    for fw in FRAMEWORKS {
        let Callback {
            code,
            state,
            handle,
            ..
        } = pkce_login(fw).await;
        let (_, other) = browser_login(&h, fw, LOOPBACK).await;
        let other_state = query_param(&other, "state").unwrap_or_default();
        let hits = token_hits(&h);
        for (what, form) in [
            ("handle as verifier", code_form(&code, &handle, &[])),
            (
                "handle as verifier, with state",
                code_form(&code, &handle, &[("state", &state)]),
            ),
            ("own verifier, no state", code_form(&code, &verifier, &[])),
            (
                "own verifier, another login's state",
                code_form(&code, &verifier, &[("state", &other_state)]),
            ),
        ] {
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_refused_unasked(&h, hits, &reply, None, what);
            assert_not_echoed(&reply, &verifier, &[&code]);
        }
        let wrong_verifier = "x".repeat(43);
        let wrong = code_call(&h, fw, &code, &wrong_verifier, &[("state", &state)]).await;
        assert_refusal(&wrong, 400, "invalid_grant", "a wrong verifier");
        assert_eq!(token_hits(&h), hits, "nothing reached the provider");
        let right = code_call(&h, fw, &code, &verifier, &[("state", &state)]).await;
        assert_eq!(
            right.status, 200,
            "refusals spend nothing: {}",
            right.raw_body
        );
        let replay = code_call(&h, fw, &code, &verifier, &[("state", &state)]).await;
        assert_refusal(&replay, 400, "invalid_grant", "a completed login is spent");
        assert_eq!(
            token_hits(&h),
            hits + 1,
            "the replay did not reach the provider"
        );

        // The other (server-PKCE) login is untouched and completes.
        assert_eq!(client_token_call(&h, fw, &other).await.status, 200);

        // A fresh client-PKCE login completes with its own verifier and its state.
        let fresh = pkce_login(fw).await;
        let fresh = code_call(&h, fw, &fresh.code, &verifier, &[("state", &fresh.state)]).await;
        assert_eq!(fresh.status, 200, "{}", fresh.raw_body);
        let sent = h.idp.last_token_request().unwrap_or_default();
        assert_eq!(sent.get("code_verifier"), Some(&verifier));

        // The server-side callback does not complete a client-PKCE login.
        let callback_login = pkce_login(fw).await;
        let hits = token_hits(&h);
        let reply = h.get(fw, &callback_path(&callback_login.url), None).await;
        assert_refused_unasked(&h, hits, &reply, None, "server-side callback");
    }
}

/// D2 variant: a spent handle stays spent on the other framework, at the server-side callback,
/// and with a *fresh* code obtained by replaying the authorization URL at the provider (same
/// state and challenge): 400 and no token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_a_spent_handle_stays_spent_across_frameworks_and_fresh_codes() {
    let h = harness().await;
    for (first, second) in FRAMEWORK_PAIRS {
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
            assert_refusal(&reply, 400, "invalid_grant", &format!("{fw:?}"));
            let reply = h.get(fw, &callback_path(url), None).await;
            assert_eq!(reply.status, 400, "callback on {fw:?}: {}", reply.raw_body);
        }
        assert_eq!(token_hits(&h), hits, "no token request for a spent handle");
    }
    // The server-side callback: spent on one framework, refused on the other.
    for (first, second) in FRAMEWORK_PAIRS {
        let (_, callback) = browser_login(&h, first, &h.url(first, CALLBACK)).await;
        let path = callback_path(&callback);
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
    let mut failures = Failures::default();
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
            let (replay, asked) = counting_token_requests(&b, client_token_call(&b, fw, url)).await;
            let second_session = if replay.status == 200 {
                " -> a second session from one login"
            } else {
                ""
            };
            failures.check(
                replay.status == 400 && asked == 0,
                &format!("{what} with A's spent handle on B ({fw:?})"),
                &replay,
                &format!(", {asked} provider token request(s){second_session}"),
            );
        }
    }
    failures.assert_none("handle replay across instances");
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
        assert_refusal(&reply, 400, "invalid_grant", "600 s");
        let reply = h.get(fw, &callback_path(&callback), None).await;
        assert_refused_unasked(&h, hits, &reply, None, "600 s, server-side callback");
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
            let reply = h.get_url(&callback).await;
            assert_refused_unasked(&h, hits, &reply, None, &format!("{case} on {fw:?}"));
            assert!(reply.body.get("access_token").is_none());
        }
    }
}

/// D5 variant: provider errors other than `access_denied` (`server_error`, an unknown code, a
/// script), with or without a code, end in 400 without a token request; the
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
            "access_denied\r\nSet-Cookie: evil=1",
        ] {
            let login = login_to(&h, fw, LOOPBACK).await;
            let hits = token_hits(&h);
            let iss = query_param(&login.url, "iss").unwrap_or_default();
            let path = with_query(
                CALLBACK,
                &[
                    ("code", &login.code),
                    ("state", &login.state),
                    ("iss", &iss),
                    ("error", error),
                    ("error_description", "<img src=x onerror=alert(2)> evil"),
                ],
            );
            let reply = h.get(fw, &path, None).await;
            assert_eq!(reply.status, 400, "{error:?}: {}", reply.raw_body);
            assert!(
                matches!(reply.error(), Some("invalid_request" | "access_denied")),
                "{error:?}: {}",
                reply.raw_body
            );
            assert_not_reflected(
                &reply,
                &["<script", "onerror", "Set-Cookie", "evil"],
                &format!("{error:?}"),
            );
            assert_not_echoed(&reply, &login.code, &[&login.handle]);
            let after = client_token_call(&h, fw, &login.url).await;
            assert_eq!(after.status, 400, "{error:?}: transaction spent");
            assert_eq!(token_hits(&h), hits, "{error:?}");
        }
        // An error without any state is a plain 400.
        let reply = h
            .get(fw, &format!("{CALLBACK}?error=access_denied"), None)
            .await;
        assert_eq!(reply.status, 400);
    }
    assert_eq!(token_hits(&h), 0);
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
            let reply = client_code_flow(&h, fw).await;
            assert_eq!(reply.status, 400, "{case} on {fw:?}: {}", reply.raw_body);
            assert!(reply.body.get("access_token").is_none(), "{case}");
        }
    }
    assert_eq!(h.idp.hits(Endpoint::Userinfo), 0);
}

/// D9 variant: a userinfo `sub` that differs from the token's only by case or whitespace is
/// refused (400), and one that is missing, numeric or a list, which names no subject at all, is
/// the provider's fault (502); neither answer describes the other user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d9_userinfo_subject_near_misses_are_refused() {
    let h = harness().await;
    let access = field(&login(&h, Framework::Axum).await, "access_token").to_owned();
    for (sub, status) in [
        (json!("Alice"), 400),
        (json!("alice "), 400),
        (json!(" alice"), 400),
        (json!("alice\u{0}"), 400),
        (json!(42), 502),
        (Value::Null, 502),
        (json!(["alice"]), 502),
    ] {
        let mut answer = json!({"preferred_username": "mallory", "email": "mallory@evil.example"});
        if !sub.is_null() {
            answer["sub"] = sub.clone();
        }
        h.idp.set_userinfo_override(Some(answer));
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, USERINFO, &access).await;
            assert_eq!(
                reply.status, status,
                "sub {sub} on {fw:?}: {}",
                reply.raw_body
            );
            assert_not_reflected(&reply, &["mallory"], "userinfo");
            assert_not_echoed(&reply, &access, &[]);
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
            let reply = get_login(&h, fw, &[("redirect_uri", LOOPBACK)]).await;
            assert_eq!(reply.status, 503, "{near}: {}", reply.raw_body);
            assert!(reply.location.is_none());
        }
        let token = h.idp.token().audience(AUDIENCE).sign();
        assert_eq!(h.bearer_both("/me", &token).await.status, 503, "{near}");
        assert_eq!(h.idp.hits(Endpoint::Authorize), 0);
        assert_eq!(token_hits(&h), 0);
    }
}

// ------------------------------------------------------------------------------------------
// D13: logout
// ------------------------------------------------------------------------------------------

/// D13 variant: `post_logout_redirect_uri` values not byte-equal to the allow-listed one
/// (scheme or host case, explicit port, trailing dot, empty or extra query, fragment, encoded
/// characters and dots, backslashes, whitespace, loopback, other schemes) or repeated are
/// refused with 400; nothing is echoed and the provider is never contacted. Without the
/// parameter, or with it empty (RFC 6749 section 3.1: as if omitted), the redirect carries
/// none.
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
    ];
    for fw in FRAMEWORKS {
        for value in bad {
            let path = with_query(LOGOUT, &[("post_logout_redirect_uri", value)]);
            let reply = h.get(fw, &path, None).await;
            let what = format!("{fw:?} {value:?}");
            assert_invalid_request_without_redirect(&reply, &what);
            assert_not_reflected(&reply, &["evil", "alert"], &what);
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
            let reply = h.get(fw, &with_query(LOGOUT, &pairs), None).await;
            assert_client_error(&reply, "repeated post_logout_redirect_uri");
            assert_ne!(reply.status, 302);
            assert!(reply.location.is_none());
        }
        for path in [
            LOGOUT.to_owned(),
            format!("{LOGOUT}?post_logout_redirect_uri="),
        ] {
            let reply = h.get(fw, &path, None).await;
            assert_eq!(reply.status, 302, "{path}");
            let location = redirect_target(&reply);
            assert!(location.as_str().starts_with(&h.idp.issuer()));
            assert_eq!(query_param(&location, "post_logout_redirect_uri"), None);
        }
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
        let callback = login_to(&h, fw, LOOPBACK).await;
        let hits = token_hits(&h);
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("code twice", callback.code_form(&[("code", "other-code")])),
            (
                "code_verifier twice, handle first",
                callback.code_form(&[("code_verifier", "junk")]),
            ),
            (
                "code_verifier twice, handle second",
                vec![
                    ("code", &callback.code),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", "junk"),
                    ("code_verifier", &callback.handle),
                ],
            ),
            (
                "redirect_uri twice",
                callback.code_form(&[("redirect_uri", "https://evil.com/cb")]),
            ),
            (
                "grant_type twice",
                callback.code_form(&[("grant_type", "refresh_token")]),
            ),
            (
                "refresh-token and refresh_token",
                vec![("refresh-token", "r-one"), ("refresh_token", "r-two")],
            ),
            (
                "device-code and device_code",
                vec![("device-code", "d-one"), ("device_code", "d-two")],
            ),
            (
                "refresh-token twice",
                vec![("refresh-token", "r-one"), ("refresh-token", "r-two")],
            ),
        ];
        for (what, form) in cases {
            let reply = h.post_form(fw, TOKEN, &form).await;
            let context = format!("{what} on {fw:?}");
            assert_refused_unasked(&h, hits, &reply, Some("invalid_request"), &context);
            assert_not_echoed(&reply, &callback.code, &[&callback.handle]);
        }
        assert_eq!(
            client_token_call(&h, fw, &callback.url).await.status,
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
    let mut failures = Failures::default();
    for fw in FRAMEWORKS {
        let refresh_token = field(&login(&h, fw).await, "refresh_token").to_owned();
        let callback = login_to(&h, fw, LOOPBACK).await;
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
                    ("code", callback.code.as_str()),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", callback.handle.as_str()),
                    ("device-code", "some-device-code"),
                ],
            ),
            (
                "code grant and refresh-token",
                callback.code_form(&[("refresh-token", &refresh_token)]),
            ),
        ] {
            let (reply, asked) = counting_token_requests(&h, h.post_form(fw, TOKEN, &form)).await;
            failures.check_unasked(
                (reply.status, reply.error()) == (400, Some("invalid_request")),
                &format!("{what} on {fw:?}"),
                &reply,
                asked,
            );
        }
    }
    failures.assert_none("ambiguous forms were served");
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
    let mut failures = Failures::default();
    for fw in FRAMEWORKS {
        let mut refresh_token = field(&login(&h, fw).await, "refresh_token").to_owned();
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
            let form = [("grant_type", grant), (field_name, &value)];
            let (reply, asked) = counting_token_requests(&h, h.post_form(fw, TOKEN, &form)).await;
            let code_ok = code.is_none_or(|c| reply.error() == Some(c));
            failures.check_unasked(
                reply.status == 400 && code_ok,
                &format!("grant_type={grant} with {field_name} on {fw:?}"),
                &reply,
                asked,
            );
            assert_not_echoed(&reply, &refresh_token, &[]);
            if reply.status == 200 {
                // The refresh happened and rotated the token: continue with the new one.
                refresh_token = field(&reply, "refresh_token").to_owned();
            }
        }
    }
    failures.assert_none("grant confusion");
}

/// E variant (transport): a body over 1 MB, a JSON body, a `text/plain` or multipart body,
/// raw invalid UTF-8, an empty body, and GET/PUT with the credentials in the query are all
/// refused with a 4xx, without a provider request and without echoing the value. A well-formed
/// form sent as `text/plain` (as a web page can send it to another origin without asking) or
/// without a type is 400 `invalid_request` at the token and the revocation endpoints.
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
                "a form sent as text/plain",
                "text/plain",
                format!("grant_type=refresh_token&refresh_token={secret}").into_bytes(),
            ),
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
            assert_not_echoed(&reply, secret, &[]);
        }
        let form = format!("grant_type=refresh_token&refresh_token={secret}");
        for endpoint in [TOKEN, "/api/auth/v2/revoke"] {
            let what = format!("{endpoint} on {fw:?}");
            let plain = post_raw(&h, fw, endpoint, "text/plain", form.clone().into_bytes()).await;
            assert_refusal(
                &plain,
                400,
                "invalid_request",
                &format!("text/plain, {what}"),
            );
            let untyped = into_reply(
                h.client()
                    .post(h.url(fw, endpoint))
                    .body(form.clone())
                    .send()
                    .await
                    .expect("answer"),
            )
            .await;
            assert_refusal(
                &untyped,
                400,
                "invalid_request",
                &format!("no type, {what}"),
            );
        }
        let path = with_query(
            TOKEN,
            &[("refresh-token", secret), ("grant_type", "refresh_token")],
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
        let callback = login_to(&h, fw, &h.url(fw, CALLBACK)).await;
        let iss = query_param(&callback.url, "iss").unwrap_or_default();
        let hits = token_hits(&h);
        for (what, pairs) in [
            (
                "state twice, genuine first",
                vec![
                    ("code", callback.code.as_str()),
                    ("state", &callback.state),
                    ("state", "x|forged"),
                    ("iss", &iss),
                ],
            ),
            (
                "state twice, genuine second",
                vec![
                    ("code", callback.code.as_str()),
                    ("state", "x|forged"),
                    ("state", &callback.state),
                    ("iss", &iss),
                ],
            ),
            (
                "code twice",
                vec![
                    ("code", "other"),
                    ("code", callback.code.as_str()),
                    ("state", &callback.state),
                    ("iss", &iss),
                ],
            ),
        ] {
            let reply = h.get(fw, &with_query(CALLBACK, &pairs), None).await;
            let context = format!("{what} on {fw:?}");
            assert_refused_unasked(&h, hits, &reply, Some("invalid_request"), &context);
            assert_not_echoed(&reply, &callback.code, &[&callback.handle]);
        }
        let genuine = h.get_url(&callback.url).await;
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
        let callback = login_to(&h, fw, LOOPBACK).await;
        let hits = token_hits(&h);
        for (what, form) in [
            (
                "empty code",
                vec![
                    ("grant_type", "authorization_code"),
                    ("code", ""),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", callback.handle.as_str()),
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
                    ("code", callback.code.as_str()),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", ""),
                ],
            ),
            (
                "no redirect_uri",
                vec![
                    ("code", callback.code.as_str()),
                    ("code_verifier", callback.handle.as_str()),
                ],
            ),
        ] {
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_refused_unasked(&h, hits, &reply, None, &format!("{what} on {fw:?}"));
            assert!(
                matches!(
                    reply.error(),
                    Some("invalid_request" | "invalid_grant" | "unsupported_grant_type")
                ),
                "{what}: {}",
                reply.raw_body
            );
        }
        assert_eq!(client_token_call(&h, fw, &callback.url).await.status, 200);
    }
}

/// RFC 6749 section 3.1: parameters sent without a value are taken as omitted. A server-side
/// callback with an empty `error=` completes the login (it is no error callback, and the login
/// is not spent on it), a refresh with an empty `grant_type=` refreshes, and an empty `prompt=`
/// sends none; a `prompt` listing several values (OpenID Connect Core 3.1.2.1) reaches the
/// provider as one list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_without_a_value_are_omitted_and_prompt_is_a_list() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let (_, callback) = browser_login(&h, fw, &h.url(fw, CALLBACK)).await;
        let path = format!("{}&error=&error_description=", callback_path(&callback));
        let reply = h.get(fw, &path, None).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        let refresh_token = field(&reply, "refresh_token").to_owned();
        let form = [
            ("grant_type", ""),
            ("refresh-token", refresh_token.as_str()),
        ];
        let refreshed = h.post_form(fw, TOKEN, &form).await;
        assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);

        for (prompt, sent) in [
            ("", None),
            ("login consent", Some("login consent")),
            ("select_account", Some("select_account")),
        ] {
            let reply = get_login(&h, fw, &[("redirect_uri", LOOPBACK), ("prompt", prompt)]).await;
            assert_eq!(
                reply.status, 302,
                "{prompt:?} on {fw:?}: {}",
                reply.raw_body
            );
            let target = redirect_target(&reply);
            let forwarded = target
                .query_pairs()
                .find(|(k, _)| k == "prompt")
                .map(|(_, v)| v.into_owned());
            assert_eq!(forwarded.as_deref(), sent, "{prompt:?} on {fw:?}");
        }
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
        let leaked_provider_token = last_token_request_field(&h.idp, "refresh_token");
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
            assert_refusal(&reply, 400, "invalid_grant", &format!("{what} on {fw:?}"));
            assert_not_echoed(&reply, &token, &[&value, &access]);
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
    let mut failures = Failures::default();
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
            failures.check(
                matches!(during.status, 200 | 503) && after.status == 200,
                &format!("provider {status} at refresh on {fw:?}, answered"),
                &during,
                &format!(", then {} {:?}", after.status, after.error()),
            );
        }
    }
    failures.assert_none("a transient provider answer ended sessions");
}

/// E3 variant: reuse detection revokes exactly the family of the reused token. Another
/// session of the same user, started on the other framework, keeps refreshing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_reuse_revokes_only_its_own_family() {
    let (h, _) = broker().await;
    for (fw, other) in FRAMEWORK_PAIRS {
        let a = login(&h, fw).await;
        let b = login(&h, other).await;
        let spent = field(&a, "refresh_token").to_owned();
        let next = refresh(&h, fw, &spent).await;
        assert_eq!(next.status, 200);
        let reuse = refresh(&h, other, &spent).await;
        assert_refusal(&reuse, 400, "invalid_grant", "reuse");
        let successor = refresh(&h, fw, field(&next, "refresh_token")).await;
        assert_refusal(
            &successor,
            400,
            "invalid_grant",
            "the reused family is revoked",
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
        assert_refusal(reply, 400, "invalid_grant", "replay");
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
            assert_refusal(
                &late,
                400,
                "invalid_grant",
                "a token minted while the family was revoked survives",
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
    for (fw, other) in FRAMEWORK_PAIRS {
        h.idp.set_device_interval(Some(5));
        let start = h.post_form(fw, DEVICE, &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let code = field(&start, "device_code").to_owned();
        let first = redeem_device_code(&h, fw, &code).await;
        assert!(
            matches!(first.error(), Some("authorization_pending" | "slow_down")),
            "{}",
            first.raw_body
        );
        let hits = token_hits(&h);
        let fast = h.post_form(other, TOKEN, &[("device_code", &code)]).await;
        assert_refused_unasked(
            &h,
            hits,
            &fast,
            Some("slow_down"),
            "slow_down is answered here",
        );
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
            let reply = redeem_device_code(&h, other, &near).await;
            assert_client_error(&reply, what);
            assert!(reply.body.get("access_token").is_none(), "{what}");
        }
        let done = redeem_device_code(&h, fw, &code).await;
        assert_eq!(done.status, 200, "{}", done.raw_body);
        let again = redeem_device_code(&h, other, &code).await;
        assert_refusal(
            &again,
            400,
            "invalid_grant",
            "redeemed on the other framework",
        );
    }
}

/// E7: there is no user-code surface here to guess against. User codes are entered at the
/// provider: the device answer's verification URIs are the provider's, with and without broker
/// mode, and a user code sent to this server's token route (the only one that takes device
/// credentials) is a plain 400 that asks nothing of the provider. Limiting guesses is the
/// provider's (README, "What is validated").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e7_user_codes_are_entered_at_the_provider_not_here() {
    let (broker, _) = broker().await;
    let plain = harness().await;
    for h in [&plain, &broker] {
        let provider = Url::parse(&h.idp.issuer()).unwrap_or_else(|e| panic!("issuer: {e}"));
        for fw in FRAMEWORKS {
            let start = h.post_form(fw, DEVICE, &[]).await;
            assert_eq!(start.status, 200, "{fw:?}: {}", start.raw_body);
            for name in ["verification_uri", "verification_uri_complete"] {
                let uri = Url::parse(field(&start, name))
                    .unwrap_or_else(|e| panic!("{name} on {fw:?}: {e}"));
                assert_eq!(uri.origin(), provider.origin(), "{name} on {fw:?}");
            }
            let user_code = field(&start, "user_code").to_owned();
            for form in [
                vec![("user_code", user_code.as_str())],
                vec![("user-code", user_code.as_str())],
                vec![
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("user_code", user_code.as_str()),
                ],
            ] {
                let hits = token_hits(h);
                let reply = h.post_form(fw, TOKEN, &form).await;
                assert_refused_unasked(h, hits, &reply, None, &format!("{form:?} on {fw:?}"));
            }
        }
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
    let subject = subject_token(&h);
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
            let what = format!("subject_token_type {subject_type:?}");
            assert_refusal(&reply, 400, "invalid_request", &what);
            assert_not_echoed(&reply, &subject, &[]);
        }
        for requested in [
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:id_token",
            "urn:example:unknown",
            "URN:IETF:PARAMS:OAUTH:TOKEN-TYPE:ACCESS_TOKEN",
        ] {
            let reply =
                exchange_subject(&h, fw, &subject, &[("requested_token_type", requested)]).await;
            let what = format!("requested_token_type {requested:?}");
            assert_refusal(&reply, 400, "invalid_request", &what);
        }
        let ok = exchange_subject(&h, fw, &subject, &[]).await;
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
    let genuine = subject_token(&h);
    let session = login(&h, Framework::Axum).await;
    let downstream =
        exchange_subject(&h, Framework::Axum, &genuine, &[("audience", "downstream")]).await;
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
            let reply = exchange_subject(&h, fw, subject, &[]).await;
            assert_refusal(&reply, 400, "invalid_request", &format!("{what} on {fw:?}"));
            assert_not_echoed(&reply, subject.trim(), &[]);
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
    let subject = subject_token(&h);
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
            let reply = exchange_subject(&h, fw, &subject, &[(name, value)]).await;
            let what = format!("{name}={value:?} on {fw:?}");
            assert_refusal(&reply, 400, "invalid_target", &what);
        }
        for pair in [
            [("audience", "downstream"), ("audience", "elsewhere")],
            [("audience", "elsewhere"), ("audience", "downstream")],
        ] {
            let reply = exchange_subject(&h, fw, &subject, &pair).await;
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
    let subject = subject_token(&h);
    let mut failures = Failures::default();
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
            let reply = exchange_subject(&h, fw, &subject, &extra).await;
            let aud = jwt(field(&reply, "access_token")).1["aud"].clone();
            failures.check(
                (reply.status, reply.error()) == (400, Some("invalid_target")),
                &format!("{extra:?} on {fw:?}"),
                &reply,
                &format!(", minted aud {aud}"),
            );
        }
    }
    failures.assert_none("disallowed targets ignored");
}

/// E12 variant: the scope is never widened by near misses (case change, a tab instead of a
/// space, a prefix of a held scope, a held scope plus another) and an exchanged token never
/// outlives its subject token; an exchange of an exchanged token keeps the narrowed scope. A
/// `scp` list entry that is no single scope token ("read admin") is not carried over, since in
/// the minted `scope` string it would become the scopes it is not.
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
            let reply = exchange_subject(&h, fw, &subject, &[("scope", scope)]).await;
            assert_refusal(
                &reply,
                400,
                "invalid_scope",
                &format!("scope {scope:?} on {fw:?}"),
            );
        }
        let narrowed = exchange_subject(&h, fw, &subject, &[("scope", "profile")]).await;
        assert_eq!(narrowed.status, 200, "{}", narrowed.raw_body);
        assert_eq!(narrowed.body["scope"], "profile");
        let (_, claims) = jwt(field(&narrowed, "access_token"));
        assert!(
            claims["exp"].as_i64().unwrap_or(i64::MAX) <= subject_exp,
            "the exchanged token outlives its subject: {} > {subject_exp}",
            claims["exp"]
        );
        let again = exchange_subject(&h, fw, field(&narrowed, "access_token"), &[]).await;
        assert_eq!(again.status, 200, "{}", again.raw_body);
        assert_eq!(
            again.body["scope"], "profile",
            "re-exchange keeps the narrowed scope"
        );
        let narrowed_token = field(&narrowed, "access_token");
        let wider = exchange_subject(&h, fw, narrowed_token, &[("scope", "openid")]).await;
        assert_refusal(&wider, 400, "invalid_scope", "wider scope on re-exchange");
    }
    // A `scp` list entry is one whole scope (C3): "read admin" grants neither `read` nor
    // `admin`, and written into the minted token's `scope` string it would grant both.
    let listed = h
        .idp
        .token()
        .audience(AUDIENCE)
        .remove_claim("scope")
        .claim(
            "scp",
            json!(["read admin", "admin ", " admin", "a\"b", "profile"]),
        )
        .sign();
    for fw in FRAMEWORKS {
        let kept = exchange_subject(&h, fw, &listed, &[]).await;
        assert_eq!(kept.status, 200, "{fw:?}: {}", kept.raw_body);
        assert_eq!(kept.body["scope"], "profile", "{fw:?}");
        let (_, claims) = jwt(field(&kept, "access_token"));
        assert_eq!(claims["scope"], "profile", "{fw:?}");
        for scope in ["admin", "read", "read admin"] {
            let reply = exchange_subject(&h, fw, &listed, &[("scope", scope)]).await;
            assert_refusal(
                &reply,
                400,
                "invalid_scope",
                &format!("{scope:?} on {fw:?}"),
            );
        }
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
    let subject = subject_token(&h);
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
            let value = HeaderValue::from_bytes(header).expect("header value");
            let reply = post_token_with_authorization(&h, fw, &[value], &form).await;
            assert_refusal(&reply, 401, "invalid_client", &format!("{what} on {fw:?}"));
            assert!(
                reply
                    .challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Basic")),
                "{what}: challenge {:?}",
                reply.challenge
            );
            assert!(reply.body.get("access_token").is_none());
            assert_not_echoed(&reply, &subject, &["svc-secret", "SVC-SECRET"]);
        }
        // A wrong Basic header is not rescued by correct form credentials.
        let mut both = form.clone();
        both.extend([("client_id", "svc"), ("client_secret", "svc-secret")]);
        let reply = exchange_as(&h, fw, &both, Some("guess")).await;
        assert_refusal(&reply, 401, "invalid_client", "wrong Basic, right form");
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
            assert_refusal(&reply, 401, "invalid_client", what);
            assert_not_echoed(&reply, "svc-secret", &[]);
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
    let subject = subject_token(&h);
    let form = exchange_form(&subject, &[]);
    let right = format!("Basic {}", STANDARD.encode("svc:svc-secret"));
    let wrong = format!("Basic {}", STANDARD.encode("svc:guess"));
    let mut failures = Failures::default();
    for fw in FRAMEWORKS {
        for (order, first, second) in [
            ("right first", &right, &wrong),
            ("wrong first", &wrong, &right),
        ] {
            let values = [first, second].map(|v| HeaderValue::from_str(v).expect("header"));
            let reply = post_token_with_authorization(&h, fw, &values, &form).await;
            let refused = (reply.status == 400 && reply.error() == Some("invalid_request"))
                || (reply.status == 401 && reply.error() == Some("invalid_client"));
            failures.check(refused, &format!("{order} on {fw:?}"), &reply, "");
        }
    }
    failures.assert_none("two Authorization headers");
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
        assert_refusal(&reply, 400, "unsupported_grant_type", "exchange");
        assert_not_echoed(&reply, &subject, &["anything"]);
    }
    assert_eq!(token_hits(&h), 0);
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
            assert_invalid_token(&h.bearer(fw, "/me", &token).await);
            let exchanged = exchange_subject(&h, fw, &token, &[]).await;
            assert_refusal(&exchanged, 400, "invalid_request", &format!("iss {iss:?}"));
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
    for backend in sql_backends(true) {
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
                let reply = client_code_flow(&h, fw).await;
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
    }
}

// ------------------------------------------------------------------------------------------
// D1 / D5 / D7 / D8 / B10 at the server-side callback
// ------------------------------------------------------------------------------------------

/// 32 bytes, base64: the state-sealing key of another deployment.
const OTHER_STATE_KEY: &str = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMzI=";
/// The client id the test servers use; the `aud` and `azp` of their ID tokens.
const CLIENT_ID: &str = "test-client";

/// GETs `url` (our server-side callback) and returns the answer and its `Set-Cookie` values.
async fn get_callback(h: &Harness, url: &Url) -> (Reply, Vec<String>) {
    let response = h
        .client()
        .get(url.as_str())
        .send()
        .await
        .expect("the server answers");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    (into_reply(response).await, cookies)
}

/// Our server-side callback on `fw` with `pairs` as its query.
fn callback_url(h: &Harness, fw: Framework, pairs: &[(&str, &str)]) -> Url {
    Url::parse(&h.url(fw, &with_query(CALLBACK, pairs))).expect("callback URL")
}

/// Asserts a refused callback: 400, no token of any kind in the body, no cookie set.
fn assert_no_session(reply: &Reply, cookies: &[String], what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.raw_body);
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(
            reply.body.get(field).is_none(),
            "{what}: {field} in {}",
            reply.raw_body
        );
    }
    assert!(cookies.is_empty(), "{what}: cookies were set: {cookies:?}");
}

/// A builder for an ID token of the provider's current key that is valid for this client and
/// the login with `nonce`: `aud` and `azp` the client, default `iss`, `sub`, `iat` and `exp`.
fn id_token_for(h: &Harness, nonce: &str) -> oidc_auth::testing::TokenBuilder {
    h.idp
        .token()
        .audience(CLIENT_ID)
        .claim("azp", json!(CLIENT_ID))
        .claim("nonce", json!(nonce))
}

/// The claims of [`id_token_for`], as JSON, for tokens signed by hand.
fn id_claims_for(h: &Harness, nonce: &str) -> Value {
    let now = SystemClock.now();
    json!({
        "iss": h.idp.issuer(),
        "sub": "alice",
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "nonce": nonce,
        "iat": now,
        "exp": now + 300,
    })
}

/// `b64url(header).b64url(claims).b64url(HMAC-SHA256(key, signing input))`.
fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// `token` with one bit of byte `index` of its signature flipped (header and payload intact).
fn flip_signature(token: &str, index: usize) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap_or_default();
    format!("{input}.{}", flip(signature, index))
}

/// The published RSA key `kid` of the provider's JWKS, and what a confused verifier might use
/// as an HMAC secret made of it: the SPKI PEM (with and without its final newline), the PKCS#1
/// PEM, the SPKI and PKCS#1 DER, the raw modulus, the JWK's `n` text and the JWK JSON.
async fn public_key_secrets(h: &Harness, kid: &str) -> Vec<(&'static str, Vec<u8>)> {
    let jwk = published_jwk(h.client(), &h.idp, kid).await;
    let (n, _) = rsa_components(&jwk);
    let (pkcs1, spki) = rsa_public_der(&jwk);
    let spki_pem = pem("PUBLIC KEY", &spki);
    vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        ("SPKI PEM, no final newline", spki_pem.trim_end().into()),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki),
        ("PKCS#1 DER", pkcs1),
        ("modulus bytes", n),
        (
            "JWK n text",
            jwk["n"].as_str().unwrap_or_default().as_bytes().to_vec(),
        ),
        ("JWK JSON", jwk.to_string().into_bytes()),
    ]
}

/// One server-side callback login on `fw` whose token answer carries, instead of the
/// provider's own ID token, what `forge` makes of the login's nonce. Returns the callback's
/// answer and cookies; the provider's token endpoint answered (once) meanwhile.
async fn callback_with_id_token(
    h: &Harness,
    fw: Framework,
    forge: impl FnOnce(&str) -> String,
) -> (Reply, Vec<String>) {
    let (authorize, callback) = browser_login(h, fw, &h.url(fw, CALLBACK)).await;
    let nonce = query_param(&authorize, "nonce").unwrap_or_default();
    assert!(!nonce.is_empty(), "the login sent a nonce: {authorize}");
    let forged = forge(&nonce);
    h.idp
        .set_token_response_tweak(Some(Arc::new(move |answer: &mut serde_json::Map<_, _>| {
            answer.insert("id_token".into(), Value::from(forged.clone()));
        })));
    let hits = token_hits(h);
    let answer = get_callback(h, &callback).await;
    h.idp.set_token_response_tweak(None);
    assert_eq!(token_hits(h), hits + 1, "the code was exchanged");
    answer
}

/// D1 at the server-side `/callback` (the token-endpoint half is in `flows.rs`): a callback
/// with a valid code but no `state` (or an empty one), with the genuine state whose handle has
/// one character changed (first, middle, last), with a handle sealed by another deployment's
/// state key (next to our valid code, and as that deployment's whole callback), is 400 and the
/// provider's token endpoint is never asked (counters reset before). Nothing is spent: the
/// genuine callback completes afterwards (200), and the foreign handle is genuine on its own
/// server (200 there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_callback_without_state_or_with_a_tampered_or_foreign_handle_is_refused() {
    let h = Harness::with(
        flow_provider().await,
        |b| allow_lists(b).state_key(STATE_KEY),
        None,
    )
    .await;
    let other = Harness::with(
        h.idp.clone(),
        |b| allow_lists(b).state_key(OTHER_STATE_KEY),
        None,
    )
    .await;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for fw in FRAMEWORKS {
        let ours = login_to(&h, fw, &h.url(fw, CALLBACK)).await;
        let foreign = login_to(&other, fw, &h.url(fw, CALLBACK)).await;
        let iss = query_param(&ours.url, "iss").unwrap_or_default();
        let prefix = ours
            .state
            .rsplit_once('|')
            .map(|(p, _)| p)
            .unwrap_or_default()
            .to_owned();
        // One character changed, in the high bit of its six, so the decoded bytes differ.
        let tampered = |index: usize| {
            let mut chars: Vec<char> = ours.handle.chars().collect();
            let i = index.min(chars.len() - 1);
            let pos = alphabet.find(chars[i]).unwrap_or(0);
            chars[i] = alphabet.chars().nth((pos + 32) % 64).unwrap_or('A');
            format!("{prefix}|{}", chars.into_iter().collect::<String>())
        };
        let middle = ours.handle.len() / 2;
        let cases: Vec<(String, Url)> = vec![
            (
                "no state".into(),
                callback_url(&h, fw, &[("code", &ours.code), ("iss", &iss)]),
            ),
            (
                "empty state".into(),
                callback_url(
                    &h,
                    fw,
                    &[("code", &ours.code), ("state", ""), ("iss", &iss)],
                ),
            ),
            (
                "handle without its prefix, tampered".into(),
                callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &ours.code),
                        ("state", tampered(0).rsplit('|').next().unwrap_or_default()),
                        ("iss", &iss),
                    ],
                ),
            ),
            (
                "first character changed".into(),
                callback_url(
                    &h,
                    fw,
                    &[("code", &ours.code), ("state", &tampered(0)), ("iss", &iss)],
                ),
            ),
            (
                "middle character changed".into(),
                callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &ours.code),
                        ("state", &tampered(middle)),
                        ("iss", &iss),
                    ],
                ),
            ),
            (
                "last character changed".into(),
                callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &ours.code),
                        ("state", &tampered(usize::MAX)),
                        ("iss", &iss),
                    ],
                ),
            ),
            (
                "another server's handle with our code".into(),
                callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &ours.code),
                        ("state", &foreign.state),
                        ("iss", &iss),
                    ],
                ),
            ),
            (
                "another server's handle with our prefix".into(),
                callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &ours.code),
                        ("state", &format!("{prefix}|{}", foreign.handle)),
                        ("iss", &iss),
                    ],
                ),
            ),
            (
                "another server's whole callback".into(),
                foreign.url.clone(),
            ),
        ];
        h.idp.reset_hits();
        for (what, url) in &cases {
            let (reply, cookies) = get_callback(&h, url).await;
            let what = format!("{what} on {fw:?}");
            assert_no_session(&reply, &cookies, &what);
            assert!(
                matches!(reply.error(), Some("invalid_request" | "invalid_grant")),
                "{what}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, &ours.code, &[&ours.handle, &foreign.handle]);
            assert_eq!(
                h.idp.hits(Endpoint::Token),
                0,
                "{what}: the provider's token endpoint was asked"
            );
        }
        // Controls: nothing was spent, and the foreign handle is genuine where it was sealed.
        let (genuine, _) = get_callback(&h, &ours.url).await;
        assert_eq!(genuine.status, 200, "genuine: {}", genuine.raw_body);
        let at_home = other.get(fw, &callback_path(&foreign.url), None).await;
        assert_eq!(at_home.status, 200, "foreign at home: {}", at_home.raw_body);
    }
}

/// D5 strengthened: after a login, our callback receives a plain `error=access_denied` with
/// the login's valid state and `iss`: 400 `access_denied`, no token request.
/// The transaction is cleared: the real code of that same login, redeemed afterwards with its
/// handle through the client's token call (on either framework) or through the server-side
/// callback, is 400 and never reaches the provider. A control login without the error
/// completes (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_access_denied_clears_the_transaction_so_the_real_code_is_refused() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let control = login_to(&h, fw, LOOPBACK).await;
        let reply = client_token_call(&h, fw, &control.url).await;
        assert_eq!(reply.status, 200, "control: {}", reply.raw_body);
        {
            let login = login_to(&h, fw, LOOPBACK).await;
            let iss = query_param(&login.url, "iss").unwrap_or_default();
            let pairs = [
                ("error", "access_denied"),
                ("state", login.state.as_str()),
                ("iss", &iss),
            ];
            let what = format!("{fw:?}");
            h.idp.reset_hits();
            let (denied, cookies) = get_callback(&h, &callback_url(&h, fw, &pairs)).await;
            assert_client_error(&denied, &what);
            assert_eq!(denied.error(), Some("access_denied"), "{what}");
            assert!(cookies.is_empty(), "{what}: {cookies:?}");
            assert_not_echoed(&denied, &login.code, &[&login.handle]);
            assert_eq!(
                token_hits(&h),
                0,
                "{what}: a token request after the denial"
            );
            for redeem_on in FRAMEWORKS {
                let reply = client_token_call(&h, redeem_on, &login.url).await;
                assert_refusal(
                    &reply,
                    400,
                    "invalid_grant",
                    &format!("{what}: the real code on {redeem_on:?}"),
                );
                assert!(reply.body.get("access_token").is_none());
            }
            let (reply, cookies) = get_callback(
                &h,
                &callback_url(
                    &h,
                    fw,
                    &[
                        ("code", &login.code),
                        ("state", &login.state),
                        ("iss", &iss),
                    ],
                ),
            )
            .await;
            assert_no_session(&reply, &cookies, &format!("{what}: server-side callback"));
            assert_eq!(
                token_hits(&h),
                0,
                "{what}: the spent login reached the provider"
            );
        }
    }
}

/// D4 on error answers (RFC 9207 section 2: they carry `iss` too): an `error=access_denied`
/// with the login's valid state but another issuer's `iss`, or without `iss` from a provider
/// that promises it, is 400 `invalid_request` and spends nothing, so the login's genuine
/// answer still completes; with the right `iss` it is the provider's denial and spends the
/// login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_an_error_answer_from_another_issuer_or_none_spends_nothing() {
    let h = harness().await;
    for fw in FRAMEWORKS {
        let server_callback = h.url(fw, CALLBACK);
        for forged_iss in [Some("https://evil.example"), None] {
            let what = format!("{fw:?}, iss {forged_iss:?}");
            let login = login_to(&h, fw, &server_callback).await;
            let mut pairs = vec![("error", "access_denied"), ("state", login.state.as_str())];
            pairs.extend(forged_iss.map(|iss| ("iss", iss)));
            let (forged, _) = get_callback(&h, &callback_url(&h, fw, &pairs)).await;
            assert_refusal(&forged, 400, "invalid_request", &what);
            let (genuine, _) = get_callback(&h, &login.url).await;
            assert_eq!(genuine.status, 200, "{what}: {}", genuine.raw_body);
        }
        let login = login_to(&h, fw, &server_callback).await;
        let iss = query_param(&login.url, "iss").unwrap_or_default();
        let denial = [
            ("error", "access_denied"),
            ("state", login.state.as_str()),
            ("iss", &iss),
        ];
        let (denied, _) = get_callback(&h, &callback_url(&h, fw, &denial)).await;
        assert_refusal(&denied, 400, "access_denied", &format!("{fw:?}"));
        let (genuine, _) = get_callback(&h, &login.url).await;
        assert_eq!(genuine.status, 400, "{fw:?}: spent by the denial");
    }
}

/// D7 at the server-side `/callback`: the code of login A placed into login B's callback (B's
/// state and `iss`) is 400 with no token and no cookie, on both frameworks: the provider's
/// PKCE check refuses it (B's verifier does not match A's challenge), and against a provider
/// that does not check PKCE, the ID token's nonce (A's) does not match B's. Either way the
/// provider was asked once: the refusal is the exchange's, not the state's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_a_code_from_another_login_is_refused_at_the_server_side_callback() {
    let h = harness().await;
    for check_pkce in [true, false] {
        h.idp.set_check_pkce(check_pkce);
        for fw in FRAMEWORKS {
            let attacker = login_to(&h, fw, &h.url(fw, CALLBACK)).await;
            let victim = login_to(&h, fw, &h.url(fw, CALLBACK)).await;
            assert_ne!(attacker.code, victim.code);
            let iss = query_param(&victim.url, "iss").unwrap_or_default();
            let injected = callback_url(
                &h,
                fw,
                &[
                    ("code", &attacker.code),
                    ("state", &victim.state),
                    ("iss", &iss),
                ],
            );
            let what = format!("PKCE checked at the provider: {check_pkce}, {fw:?}");
            let (reply, asked) = counting_token_requests(&h, async {
                let (reply, cookies) = get_callback(&h, &injected).await;
                assert!(cookies.is_empty(), "{what}: {cookies:?}");
                reply
            })
            .await;
            assert_no_session(&reply, &[], &what);
            assert_eq!(
                reply.error(),
                Some("invalid_grant"),
                "{what}: {}",
                reply.raw_body
            );
            assert_eq!(asked, 1, "{what}");
            assert_eq!(
                last_token_request_field(&h.idp, "code"),
                attacker.code,
                "{what}"
            );
            assert_not_echoed(&reply, &attacker.code, &[&victim.handle]);
        }
    }
    h.idp.set_check_pkce(true);
}

/// D8 additions at the server-side `/callback`: the provider's token answer carries an ID token
/// that is right in every claim (this client, the login's nonce) but not signed by the
/// provider's published key: unsigned (`alg` `none`, `None`, `NONE`, with the RSA key's kid and
/// without, with an empty signature and with one); HS256 MACed with the client secret (with and
/// without the RSA key's kid); HS256 MACed with the provider's RSA public key bytes (SPKI and
/// PKCS#1 in PEM and DER, the modulus, the JWK `n` and the JWK JSON; the classic RS/HS
/// confusion, with the RSA key's kid and without one); RS256 with the published kid and one
/// signature byte flipped (first, middle, last); ES256 likewise; RS256 by an unpublished key
/// under the published kid (conformance #1375); a signature of one key under the other key's
/// kid or under another `alg` (ES256 as RS256, RS256 as PS256); the genuine RS256 signature
/// over a payload with another `sub`. Each is 400 with no token and no cookie, on both
/// frameworks, and userinfo is never asked. Controls: correctly signed RS256 and ES256 ID tokens
/// made the same way give 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d8_id_tokens_not_signed_by_the_published_key_are_refused_at_the_callback() {
    const SECRET: &str = "client-secret-of-test-client-0123456789";
    let idp = flow_provider().await;
    idp.set_client(CLIENT_ID, Some(SECRET));
    // Published before anything is fetched, so its kid is known from the first JWKS on.
    let es_kid = idp.add_key(oidc_auth::testing::SigningAlg::ES256);
    // An RSA key the provider holds but never publishes.
    let unpublished = idp.add_key(oidc_auth::testing::SigningAlg::RS256);
    idp.retire_key(&unpublished);
    let h = Harness::with(idp, |b| allow_lists(b).client_secret(SECRET), None).await;
    let rsa_kid = h.idp.current_kid();
    let secrets = public_key_secrets(&h, &rsa_kid).await;
    for fw in FRAMEWORKS {
        for (what, kid) in [("RS256", None), ("ES256", Some(es_kid.as_str()))] {
            let (reply, _) = callback_with_id_token(&h, fw, |nonce| {
                let builder = id_token_for(&h, nonce);
                match kid {
                    Some(kid) => builder.kid(kid).sign(),
                    None => builder.sign(),
                }
            })
            .await;
            assert_eq!(
                reply.status, 200,
                "control {what} on {fw:?}: {}",
                reply.raw_body
            );
        }
    }
    let userinfo = h.idp.hits(Endpoint::Userinfo);
    type Forge<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let mut cases: Vec<(String, Forge)> = Vec::new();
    for (label, header) in [
        ("no kid", json!({"alg": "HS256", "typ": "JWT"})),
        (
            "RSA kid",
            json!({"alg": "HS256", "typ": "JWT", "kid": rsa_kid}),
        ),
    ] {
        let h = &h;
        cases.push((
            format!("HS256 with the client secret, {label}"),
            Box::new(move |nonce| hs256(&header, &id_claims_for(h, nonce), SECRET.as_bytes())),
        ));
    }
    for (name, secret) in &secrets {
        for (label, header) in [
            (
                "RSA kid",
                json!({"alg": "HS256", "typ": "JWT", "kid": rsa_kid}),
            ),
            ("no kid", json!({"alg": "HS256", "typ": "JWT"})),
        ] {
            let h = &h;
            cases.push((
                format!("HS256 with the public key as {name}, {label}"),
                Box::new(move |nonce| hs256(&header, &id_claims_for(h, nonce), secret)),
            ));
        }
    }
    for alg in ["none", "None", "NONE"] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "typ": "JWT", "kid": rsa_kid}),
        ] {
            for signature in ["", "c2lnbmF0dXJl"] {
                let h = &h;
                let header = header.clone();
                cases.push((
                    format!("unsigned, header {header}, signature {signature:?}"),
                    Box::new(move |nonce| {
                        let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
                        let claims = id_claims_for(h, nonce);
                        format!("{}.{}.{signature}", part(&header), part(&claims))
                    }),
                ));
            }
        }
    }
    for (alg, kid) in [("RS256", rsa_kid.clone()), ("ES256", es_kid.clone())] {
        for (position, index) in [("first", 0), ("middle", 32), ("last", usize::MAX)] {
            let h = &h;
            let kid = kid.clone();
            cases.push((
                format!("{alg} with the published kid, {position} signature byte flipped"),
                Box::new(move |nonce| {
                    flip_signature(&id_token_for(h, nonce).kid(&kid).sign(), index)
                }),
            ));
        }
    }
    {
        let (h, rsa_kid, es_kid, unpublished) = (&h, &rsa_kid, &es_kid, &unpublished);
        cases.push((
            "RS256 by an unpublished key under the published kid".to_owned(),
            Box::new(move |nonce| {
                id_token_for(h, nonce)
                    .kid(unpublished)
                    .header("kid", json!(rsa_kid))
                    .sign()
            }),
        ));
        cases.push((
            "ES256 signature under an RS256 header with the ES256 kid".to_owned(),
            Box::new(move |nonce| {
                id_token_for(h, nonce)
                    .kid(es_kid)
                    .header("alg", json!("RS256"))
                    .sign()
            }),
        ));
        cases.push((
            "RS256 signature under the ES256 key's kid".to_owned(),
            Box::new(move |nonce| id_token_for(h, nonce).header("kid", json!(es_kid)).sign()),
        ));
        cases.push((
            "RS256 signature under a PS256 header".to_owned(),
            Box::new(move |nonce| id_token_for(h, nonce).header("alg", json!("PS256")).sign()),
        ));
        cases.push((
            "RS256 signature of another payload".to_owned(),
            Box::new(move |nonce| {
                let genuine = id_token_for(h, nonce).sign();
                let mut parts: Vec<&str> = genuine.split('.').collect();
                let mut claims = id_claims_for(h, nonce);
                claims["sub"] = json!("mallory");
                let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
                parts[1] = &payload;
                parts.join(".")
            }),
        ));
    }
    for fw in FRAMEWORKS {
        for (what, forge) in &cases {
            let (reply, cookies) = callback_with_id_token(&h, fw, |nonce| forge(nonce)).await;
            let what = format!("{what} on {fw:?}");
            assert_no_session(&reply, &cookies, &what);
            assert_eq!(
                reply.error(),
                Some("invalid_grant"),
                "{what}: {}",
                reply.raw_body
            );
            assert_not_echoed(&reply, SECRET, &[]);
        }
    }
    assert_eq!(
        h.idp.hits(Endpoint::Userinfo),
        userinfo,
        "userinfo was asked"
    );
}

/// B10, second half, at the server-side `/callback`: an access-token-typed JWT (`typ` `at+jwt`
/// in the spellings RFC 9068 and media types allow: `at+jwt`, `AT+JWT`, `application/at+jwt`)
/// that is otherwise a valid ID token for this client (published key, right `iss`, `aud`,
/// `azp`, `exp`, `iat`, the login's nonce) is refused as the ID token: 400, no token, no
/// cookie, on both frameworks. Other explicit non-ID types (`logout+jwt`, `secevent+jwt`) too,
/// and an untyped logout token (its `events` claim). Control: the same token (with its access-token claims `scope`, `client_id`, `jti`) typed
/// `JWT` gives 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_an_access_token_typed_jwt_is_not_an_id_token_at_the_callback() {
    let h = harness().await;
    let typed = |nonce: &str, typ: &str| {
        id_token_for(&h, nonce)
            .header("typ", json!(typ))
            .scope("openid")
            .claim("client_id", json!(CLIENT_ID))
            .claim("jti", json!("at-1"))
            .sign()
    };
    for fw in FRAMEWORKS {
        let (control, _) = callback_with_id_token(&h, fw, |nonce| typed(nonce, "JWT")).await;
        assert_eq!(
            control.status, 200,
            "control on {fw:?}: {}",
            control.raw_body
        );
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "logout+jwt",
            "secevent+jwt",
        ] {
            let (reply, cookies) = callback_with_id_token(&h, fw, |nonce| typed(nonce, typ)).await;
            let what = format!("typ {typ} on {fw:?}");
            assert_no_session(&reply, &cookies, &what);
            assert_eq!(
                reply.error(),
                Some("invalid_grant"),
                "{what}: {}",
                reply.raw_body
            );
        }
        // An untyped back-channel logout token shaped as this login's ID token: its `events`
        // claim marks it.
        let (reply, cookies) = callback_with_id_token(&h, fw, |nonce| {
            id_token_for(&h, nonce)
                .remove_header("typ")
                .claim(
                    "events",
                    json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
                )
                .sign()
        })
        .await;
        let what = format!("logout token on {fw:?}");
        assert_no_session(&reply, &cookies, &what);
        assert_eq!(
            reply.error(),
            Some("invalid_grant"),
            "{what}: {}",
            reply.raw_body
        );
    }
    assert_eq!(h.idp.hits(Endpoint::Userinfo), 0);
}
