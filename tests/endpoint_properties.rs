//! Property tests over requests to the built-in auth endpoints (login, callback, token, device,
//! logout, userinfo, revoke, JWKS), on both frameworks, in proxy mode and in broker mode (on the
//! memory store and on SQLite): any method, query, form or other body, content type, cookie and
//! `Authorization` header.
//!
//! Random bytes alone would stop at the first check of every endpoint, so each case starts from
//! the fields its endpoint reads (the token endpoint's per grant), with values that mean
//! something there, real ones included: the code, state and verifier of a fresh login, the
//! tokens of a finished one, a device code. It then drops, repeats or marks each field, or puts
//! another value in, and may add other fields, another method, content type or coding, a body
//! that is not the form, or one over the 16 KiB limit. So the cases reach the provider and the
//! store and also succeed, not only the refusals in front of them.
//!
//! For every case, on both frameworks:
//! - the answer comes within a time bound and is never a 5xx (the provider and the store are up,
//!   so nothing here is an outage);
//! - every 4xx has the JSON error body (`detail`, `error`, `error_description`);
//! - every answer carries `Cache-Control: no-store`, so that no cache keeps a token, a code or a
//!   redirect carrying state;
//! - no value sent is echoed in any body (each carries a marker the body is searched for);
//! - axum and actix-web agree on the status and the error code.
//!
//! 10 000 cases per property unless `PROPTEST_CASES` says otherwise (CI sets it to 10 000).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oidc_auth::OidcConfigBuilder;
use oidc_auth::store::memory::MemoryStore;
use oidc_auth_tests::broker::{provider, serve_broker};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, assert_error_body_and_no_store,
    assert_frameworks_agree, browser_login, client_code_flow, flow_provider, into_reply,
    property_runtime, proptest_config, query_param,
};
use proptest::prelude::*;
use reqwest::Method;
use reqwest::header::HeaderValue;

const APP_CALLBACK: &str = "https://app.example.com/api/auth/v2/callback";
const APP_BYE: &str = "https://app.example.com/bye";

/// What every value the cases send carries, so that an echo of any of them can be found. The
/// `~` is in no base64 alphabet, so the marker cannot turn up by chance in a token or an id the
/// servers hand out.
const MARKER: &str = "MRK~q";

/// The longest any case may take on one framework: far above what a refusal or a loopback
/// provider call takes, and above a stall of a busy CI machine, so that only an unbounded path
/// fails it.
const CASE_BOUND: Duration = Duration::from_secs(10);

/// The endpoints of both modes, the token endpoint once per grant (after `#`); the last, the
/// broker's JWKS, is not mounted in proxy mode.
const ENDPOINTS: [&str; 11] = [
    "/api/auth/v2/login",
    "/api/auth/v2/callback",
    "/api/auth/v2/token#code",
    "/api/auth/v2/token#refresh",
    "/api/auth/v2/token#device",
    "/api/auth/v2/token#exchange",
    "/api/auth/v2/device",
    "/api/auth/v2/logout",
    "/api/auth/v2/userinfo",
    "/api/auth/v2/revoke",
    "/api/auth/v2/.well-known/jwks.json",
];

/// Field names the endpoints read, or that an attacker would try on them.
const FIELDS: [&str; 30] = [
    "redirect_uri",
    "state",
    "code",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "prompt",
    "offline_access",
    "error",
    "error_description",
    "iss",
    "grant_type",
    "refresh_token",
    "device_code",
    "client_id",
    "client_secret",
    "token",
    "token_type_hint",
    "post_logout_redirect_uri",
    "id_token_hint",
    "subject_token",
    "subject_token_type",
    "audience",
    "requested_token_type",
    "nonce",
    "response_type",
    "login_hint",
    "session_state",
    "resource",
];

/// Values standing for what a real flow hands out, put in when a case is run on a framework:
/// the code and state of a fresh login (through the server's callback for the callback
/// endpoint, to py-oidc-auth-client's loopback listener otherwise) and that login's PKCE
/// verifier, the access and refresh tokens of a finished login, an access token the provider
/// signed for this server (a token exchange's subject), a device code, the issuer.
const STATE: &str = "{state}";
const CODE: &str = "{code}";
const VERIFIER: &str = "{verifier}";
const ACCESS: &str = "{access}";
const REFRESH: &str = "{refresh}";
const PROVIDER_ACCESS: &str = "{provider_access}";
const DEVICE_CODE: &str = "{device_code}";
const ISSUER: &str = "{issuer}";

/// The fields each endpoint reads, with values that mean something to it: a case keeps, drops,
/// repeats or marks each.
fn template(endpoint: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match endpoint.rsplit('/').next().unwrap_or_default() {
        "login" => &[
            (
                "redirect_uri",
                &[APP_CALLBACK, LOOPBACK, "http://localhost:1/x"],
            ),
            ("offline_access", &["true", "false"]),
            ("prompt", &["consent", "login", "none"]),
            (
                "scope",
                &["openid", "openid offline_access", "openid admin"],
            ),
            (
                "code_challenge",
                &["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"],
            ),
            ("code_challenge_method", &["S256", "plain"]),
        ],
        "callback" => &[
            ("code", &[CODE]),
            ("state", &[STATE]),
            ("iss", &[ISSUER]),
            ("error", &["access_denied", "login_required"]),
        ],
        "token#code" => &[
            ("grant_type", &["authorization_code"]),
            ("code", &[CODE]),
            ("redirect_uri", &[LOOPBACK, APP_CALLBACK]),
            ("code_verifier", &[VERIFIER, STATE]),
        ],
        "token#refresh" => &[
            ("grant_type", &["refresh_token"]),
            ("refresh_token", &[REFRESH, ACCESS]),
            ("scope", &["openid", "openid admin"]),
        ],
        "token#device" => &[
            (
                "grant_type",
                &["urn:ietf:params:oauth:grant-type:device_code"],
            ),
            ("device_code", &[DEVICE_CODE]),
            ("client_id", &["test-client"]),
        ],
        "token#exchange" => &[
            (
                "grant_type",
                &["urn:ietf:params:oauth:grant-type:token-exchange"],
            ),
            ("subject_token", &[PROVIDER_ACCESS, ACCESS, REFRESH]),
            (
                "subject_token_type",
                &[
                    "urn:ietf:params:oauth:token-type:access_token",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ],
            ),
            ("audience", &["broker-api", "downstream", "api"]),
            ("scope", &["openid", "openid admin"]),
        ],
        "device" => &[
            ("client_id", &["test-client"]),
            ("scope", &["openid", "openid offline_access"]),
        ],
        "logout" => &[
            (
                "post_logout_redirect_uri",
                &[APP_BYE, "https://evil.example/bye"],
            ),
            ("id_token_hint", &[ACCESS]),
            ("state", &["s"]),
        ],
        "revoke" => &[
            ("token", &[REFRESH, ACCESS]),
            ("token_type_hint", &["refresh_token", "access_token"]),
            ("client_id", &["test-client"]),
        ],
        _ => &[],
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    proxy: Harness,
    broker: Harness,
    /// A broker on SQLite: the SQL stores' transactions behind the same endpoints.
    broker_on_sqlite: Harness,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(2);
        let (proxy, broker, broker_on_sqlite) = runtime.block_on(async {
            let allow = |b: OidcConfigBuilder| {
                b.login_redirect_uris([APP_CALLBACK.to_owned()])
                    .logout_redirect_uris([APP_BYE.to_owned()])
            };
            let proxy = Harness::with(flow_provider().await, allow, None).await;
            let broker =
                serve_broker(provider().await, Arc::new(MemoryStore::new()), allow, None).await;
            let sqlite = oidc_auth::store::connect("sqlite::memory:")
                .await
                .expect("an SQLite store in memory");
            let broker_on_sqlite = serve_broker(provider().await, sqlite, allow, None).await;
            (proxy, broker, broker_on_sqlite)
        });
        Fixture {
            runtime,
            proxy,
            broker,
            broker_on_sqlite,
        }
    })
}

/// A value of no meaning: marked text of any characters, a long marked run, marked bytes that
/// are not UTF-8 (sent percent-encoded, read lossily by the servers), or nothing.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => ".{0,40}".prop_map(|s| format!("{MARKER}{s}")),
        1 => (1usize..20_000).prop_map(|n| format!("{MARKER}{}", "a".repeat(n))),
        1 => prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| format!("{MARKER}{}", String::from_utf8_lossy(&b))),
        1 => Just(String::new()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(FIELDS.as_slice()).prop_map(str::to_owned),
        1 => "[a-z_\\[\\]]{0,12}",
    ]
}

fn pairs(most: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), value()), 0..most)
}

/// What a case does with one field of its endpoint's template.
#[derive(Clone, Debug)]
enum Choice {
    Leave,
    /// The template's value number `.0` (modulo their count), sent `.1` times, with the
    /// marker appended if `.2`.
    Meaningful(usize, usize, bool),
    Other(String),
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        3 => Just(Choice::Leave),
        12 => (prop_oneof![2 => Just(0usize), 1 => 0usize..4], prop_oneof![11 => Just(1usize), 1 => Just(2usize)], prop::bool::weighted(0.1))
            .prop_map(|(i, n, marked)| Choice::Meaningful(i, n, marked)),
        1 => value().prop_map(Choice::Other),
    ]
}

#[derive(Clone, Debug)]
enum Body {
    None,
    /// The fields, form-encoded.
    Fields,
    Bytes(Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => Just(Body::None),
        8 => Just(Body::Fields),
        1 => prop::collection::vec(any::<u8>(), 0..2_000).prop_map(|mut b| {
            b.extend_from_slice(MARKER.as_bytes());
            Body::Bytes(b)
        }),
        // Larger than the endpoints' 16 KiB form limit.
        1 => (16_000usize..40_000).prop_map(|n| {
            Body::Bytes(format!("code={MARKER}{}", "a".repeat(n)).into_bytes())
        }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    method: &'static str,
    endpoint: &'static str,
    /// The endpoint's fields, then any others: in the query of a GET endpoint, in the body of
    /// a POST one.
    fields: Vec<(String, String)>,
    /// Sent in the query whatever the endpoint's method.
    query: Vec<(String, String)>,
    body: Body,
    content_type: Option<&'static str>,
    content_encoding: Option<&'static str>,
    cookie: Option<String>,
    authorization: Option<String>,
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        2 => Just(Some(format!("Bearer {ACCESS}"))),
        1 => Just(Some(basic("svc", "svc-secret"))),
        2 => value().prop_map(|v| Some(format!("Bearer {v}"))),
        1 => (prop::sample::select(["svc", "test-client", ""].as_slice()), value())
            .prop_map(|(u, p)| Some(basic(u, &p))),
        1 => value().prop_map(Some),
    ]
}

const FORM: &str = "application/x-www-form-urlencoded";

fn case(endpoints: &'static [&'static str]) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(endpoints),
        prop::option::weighted(
            0.15,
            prop::sample::select(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"].as_slice()),
        ),
        prop::collection::vec(choice(), 6),
        prop::option::weighted(0.3, pairs(3)),
        prop::option::weighted(0.1, pairs(4)),
        body(),
        prop_oneof![
            8 => Just(Some(FORM)),
            2 => prop::option::of(prop::sample::select(
                [
                    "application/x-www-form-urlencoded; charset=UTF-8",
                    "application/json",
                    "text/plain",
                    "multipart/form-data; boundary=x",
                    "application/x-www-form-urlencoded; charset=latin1",
                    "garbage",
                ]
                .as_slice(),
            )),
        ],
        prop::option::weighted(
            0.1,
            prop::sample::select(["gzip", "identity", "br, gzip"].as_slice()),
        ),
        prop::option::weighted(0.2, value()),
        authorization(),
        // Most exchanges authenticate as the registered exchange client, so that they get past
        // client authentication.
        prop::bool::weighted(0.6),
    )
        .prop_map(
            |(
                endpoint,
                method,
                choices,
                extra,
                query,
                body,
                content_type,
                content_encoding,
                cookie,
                authorization,
                as_exchange_client,
            )| {
                let mut fields = Vec::new();
                for ((name, values), choice) in template(endpoint).iter().zip(choices) {
                    match choice {
                        Choice::Leave => {}
                        Choice::Meaningful(i, times, marked) => {
                            let value = values[i % values.len()];
                            let value = if marked {
                                format!("{value}{MARKER}")
                            } else {
                                value.to_owned()
                            };
                            for _ in 0..times {
                                fields.push(((*name).to_owned(), value.clone()));
                            }
                        }
                        Choice::Other(value) => fields.push(((*name).to_owned(), value)),
                    }
                }
                fields.extend(extra.unwrap_or_default());
                let own = if endpoint.contains("/token#")
                    || endpoint.ends_with("/device")
                    || endpoint.ends_with("/revoke")
                {
                    "POST"
                } else {
                    "GET"
                };
                Case {
                    method: method.unwrap_or(own),
                    endpoint,
                    fields,
                    query: query.unwrap_or_default(),
                    body,
                    content_type,
                    content_encoding,
                    cookie,
                    authorization: if as_exchange_client && endpoint.ends_with("#exchange") {
                        Some(basic("svc", "svc-secret"))
                    } else {
                        authorization
                    },
                }
            },
        )
}

/// A header value the test client can send: visible ASCII and obs-text pass, other control
/// characters are dropped.
fn header_value(text: &str) -> HeaderValue {
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
        .collect();
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What the sentinels of a case stand for on one framework, from real flows run just before.
#[derive(Default)]
struct Real(Vec<(&'static str, String)>);

impl Real {
    async fn for_case(h: &Harness, fw: Framework, case: &Case) -> Self {
        let text = format!("{case:?}");
        let uses = |sentinel: &str| text.contains(sentinel);
        let mut real = Real::default();
        real.0.push((ISSUER, h.idp.issuer()));
        if uses(PROVIDER_ACCESS) {
            let token = h.idp.token().audience(AUDIENCE).scope("openid").sign();
            real.0.push((PROVIDER_ACCESS, token));
        }
        if uses(CODE) || uses(STATE) || uses(VERIFIER) {
            let to = if case.endpoint.ends_with("/callback") {
                APP_CALLBACK
            } else {
                LOOPBACK
            };
            let (_, callback) = browser_login(h, fw, to).await;
            let state = query_param(&callback, "state").unwrap_or_default();
            let verifier = state.rsplit('|').next().unwrap_or_default().to_owned();
            real.0
                .push((CODE, query_param(&callback, "code").unwrap_or_default()));
            real.0.push((VERIFIER, verifier));
            real.0.push((STATE, state));
        }
        if uses(ACCESS) || uses(REFRESH) {
            let tokens = client_code_flow(h, fw).await;
            let field = |name: &str| {
                tokens.body[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("a login on {fw:?} gave no {name}: {tokens:?}"))
                    .to_owned()
            };
            real.0.push((ACCESS, field("access_token")));
            real.0.push((REFRESH, field("refresh_token")));
        }
        if uses(DEVICE_CODE) {
            let started = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            let code = started.body["device_code"].as_str().unwrap_or_default();
            real.0.push((DEVICE_CODE, code.to_owned()));
        }
        real
    }

    fn put_in(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (sentinel, value) in &self.0 {
            text = text.replace(sentinel, value);
        }
        text
    }

    fn pairs(&self, pairs: &[(String, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.clone(), self.put_in(v)))
            .collect()
    }
}

async fn send(h: &Harness, fw: Framework, case: &Case) -> Reply {
    let real = Real::for_case(h, fw, case).await;
    let fields = real.pairs(&case.fields);
    let path = case.endpoint.split('#').next().unwrap_or_default();
    let mut url = url::Url::parse(&h.url(fw, path)).expect("a test server URL");
    let mut query = real.pairs(&case.query);
    if case.method == "GET" {
        query.extend(fields.iter().cloned());
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(&query);
    }
    let method = Method::from_bytes(case.method.as_bytes()).expect("a method");
    let mut request = h.client().request(method, url);
    match &case.body {
        Body::None => {}
        Body::Fields if case.method == "GET" => {}
        Body::Fields => {
            request = request.body(serde_urlencoded::to_string(&fields).expect("a form"));
        }
        Body::Bytes(bytes) => request = request.body(bytes.clone()),
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(coding) = case.content_encoding {
        request = request.header("content-encoding", coding);
    }
    if let Some(cookie) = &case.cookie {
        request = request.header("cookie", header_value(cookie));
    }
    if let Some(authorization) = &case.authorization {
        request = request.header("authorization", header_value(&real.put_in(authorization)));
    }
    let started = Instant::now();
    let reply = tokio::time::timeout(CASE_BOUND, request.send())
        .await
        .unwrap_or_else(|_| panic!("no answer within {CASE_BOUND:?} on {fw:?}: {case:?}"))
        .unwrap_or_else(|e| panic!("no answer on {fw:?}: {e}: {case:?}"));
    let reply = into_reply(reply).await;
    assert!(
        started.elapsed() < CASE_BOUND,
        "took {:?} on {fw:?}",
        started.elapsed()
    );
    reply
}

/// The checks every answer passes, and the parity of the two frameworks.
fn check(case: &Case, replies: &[(Framework, Reply)]) {
    for (fw, reply) in replies {
        assert!(
            reply.status < 500,
            "{fw:?} answered {} ({}) to {case:?}",
            reply.status,
            reply.raw_body
        );
        assert_error_body_and_no_store(
            reply,
            &format!(
                "{fw:?} answered {} ({}) to {case:?}",
                reply.status, reply.raw_body
            ),
        );
        assert!(
            !reply
                .raw_body
                .to_lowercase()
                .contains(&MARKER.to_lowercase()),
            "{fw:?} echoed a value sent ({} {}) to {case:?}",
            reply.status,
            reply.raw_body
        );
    }
    if let [(_, axum), (_, actix)] = replies {
        assert_frameworks_agree(axum, actix, case);
    }
}

fn run(h: &Harness, case: &Case) {
    let f = fixture();
    let replies: Vec<(Framework, Reply)> = f.runtime.block_on(async {
        let mut replies = Vec::new();
        for fw in FRAMEWORKS {
            replies.push((fw, send(h, fw, case).await));
        }
        replies
    });
    check(case, &replies);
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn any_request_to_a_proxy_s_auth_endpoints_is_answered_cleanly(case in case(&ENDPOINTS[..10])) {
        run(&fixture().proxy, &case);
    }

    #[test]
    fn any_request_to_a_broker_s_auth_endpoints_is_answered_cleanly(case in case(&ENDPOINTS)) {
        run(&fixture().broker, &case);
    }

    #[test]
    fn any_request_to_a_broker_on_sqlite_is_answered_cleanly(case in case(&ENDPOINTS)) {
        run(&fixture().broker_on_sqlite, &case);
    }
}
