//! Property tests over what the identity provider answers: every auth endpoint that calls the
//! provider (the code exchange, the server-side callback, a refresh, the device start and
//! poll, userinfo, revocation) meets an arbitrary answer there, on both frameworks, in proxy
//! mode and in broker mode.
//!
//! Each case runs a real flow up to the call that reaches the provider, and gives that call
//! either the real answer, the real answer with fields dropped, retyped or replaced, and the ID
//! token's claims changed, or an answer of its own: any status with a JSON body, an empty body
//! or a `Retry-After`, HTML, a body cut in half, a closed connection.
//!
//! For every case, on both frameworks:
//! - the answer comes within a time bound, and is never a 500: the provider's fault is 502, 503
//!   or 504, and any other answer is below 500;
//! - every error has the JSON error body, and every answer `Cache-Control: no-store`;
//! - no token value the provider sent (each carries a marker) is echoed in an error;
//! - axum and actix-web agree on the status and the error code.
//!
//! And what each answer may be:
//! - with the provider's real answer, the flow succeeds;
//! - a code exchange whose ID token lost or changed a claim it is checked on is never a 200;
//! - a token answer of 200 carries an access token, and a userinfo answer of 200 came from the
//!   provider naming the token's own subject.
//!
//! A second property does the same for the two documents bearer validation reads, at a cold
//! start: the discovery document and the key set, each real, changed or replaced. A token the
//! provider signed is accepted exactly when the discovery document's `issuer` and `jwks_uri`
//! and its key's published fields still vouch for it (a broken optional field elsewhere in the
//! document must not stop validation); a token signed by another key under the same `kid` is
//! never accepted; every refusal is 401 or 503, within a time bound.
//!
//! 10 000 cases unless `PROPTEST_CASES` says otherwise (CI sets it to 10 000).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use oidc_auth::store::memory::MemoryStore;
use oidc_auth::testing::{Endpoint, Fault, JsonTweak, MockProvider, SigningAlg};
use oidc_auth::{OidcAuth, OidcConfig};
use oidc_auth_tests::broker::{jwt, provider, serve_broker};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, assert_error_body_and_no_store,
    assert_frameworks_agree, browser_login, client_code_flow, client_token_call, flow_provider,
    property_runtime, proptest_config,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const APP_CALLBACK: &str = "https://app.example.com/api/auth/v2/callback";
const TOKEN: &str = "/api/auth/v2/token";

/// What every token value a case puts into a provider answer carries, so that an echo of it in
/// an error can be found. The `~` is in no base64 alphabet, so it cannot turn up by chance in
/// anything the servers make.
const MARKER: &str = "MRK~p";

/// The longest one call may take: no answer of these cases is slow, so only an unbounded path
/// fails it, not a stall of a busy machine.
const CASE_BOUND: Duration = Duration::from_secs(10);

/// The flow a case runs, and so the provider endpoint whose answer it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// py-oidc-auth-client's code exchange at our token endpoint: the provider's token endpoint.
    CodeExchange,
    /// The server-side callback: the provider's token endpoint.
    Callback,
    /// A refresh at our token endpoint: the provider's token endpoint (in broker mode only
    /// when the broker refreshes the provider's tokens).
    Refresh,
    /// Our device start: the provider's device endpoint.
    DeviceStart,
    /// A poll of an approved device code: the provider's token endpoint.
    DevicePoll,
    /// Our userinfo endpoint with an access token: the provider's userinfo endpoint.
    Userinfo,
    /// Our revocation endpoint with a refresh token: the provider's revocation endpoint.
    Revoke,
}

impl Stage {
    fn endpoint(self) -> Endpoint {
        match self {
            Stage::CodeExchange | Stage::Callback | Stage::Refresh | Stage::DevicePoll => {
                Endpoint::Token
            }
            Stage::DeviceStart => Endpoint::Device,
            Stage::Userinfo => Endpoint::Userinfo,
            Stage::Revoke => Endpoint::Revocation,
        }
    }

    /// Whether the ID token of this stage's provider answer is checked as a login's is.
    fn checks_id_token(self) -> bool {
        matches!(self, Stage::CodeExchange | Stage::Callback)
    }
}

/// What happens to one field of a JSON answer or of the ID token's claims.
#[derive(Clone, Debug)]
enum Change {
    Drop,
    /// A marked string of its own.
    Mark(String),
    /// Any JSON value: another type, an edge of the numbers, a nested value.
    Replace(Value),
}

/// The provider's answer at the stage's endpoint.
#[derive(Clone, Debug)]
enum Answer {
    Real,
    /// The real answer (for the device start, an answer of the real shape) with these fields
    /// changed and these added.
    Changed(Vec<(String, Change)>),
    /// An answer of its own: one of the mock provider's faults that answer at once.
    Own(Fault),
}

#[derive(Clone, Debug)]
struct Case {
    broker: bool,
    stage: Stage,
    answer: Answer,
    /// A change to one claim of every ID token the provider signs during the call.
    id_token: Option<(&'static str, Change)>,
}

impl Case {
    /// Whether the provider answers as it would on its own.
    fn is_real(&self) -> bool {
        matches!(self.answer, Answer::Real) && self.id_token.is_none()
    }

    /// Whether the ID token lost or changed a claim a login checks, so that it cannot be
    /// valid: `iss`, `aud` and `nonce` must be the expected values; `sub` a string of more than
    /// whitespace; `exp` and `iat` numbers (a number may still be a valid time, so it is left
    /// out); `azp`, when present, the client's id.
    fn breaks_id_token(&self) -> bool {
        let Some((claim, change)) = &self.id_token else {
            return false;
        };
        match (*claim, change) {
            ("azp", Change::Drop) => false,
            (_, Change::Drop) => true,
            ("sub", Change::Mark(_)) => false,
            ("sub", Change::Replace(value)) => value.as_str().is_none_or(|s| s.trim().is_empty()),
            ("exp" | "iat", Change::Replace(value)) => !value.is_number(),
            _ => true,
        }
    }
}

/// The fields of the provider's token answer, and others a provider might send.
const TOKEN_FIELDS: [&str; 9] = [
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "refresh_expires_in",
    "id_token",
    "scope",
    "error",
    "issued_token_type",
];
const DEVICE_FIELDS: [&str; 7] = [
    "device_code",
    "user_code",
    "verification_uri",
    "verification_uri_complete",
    "verification_url",
    "expires_in",
    "interval",
];
const USERINFO_FIELDS: [&str; 5] = ["sub", "email", "email_verified", "groups", "name"];
/// The claims of the ID token a case may change: the ones a login checks, then `azp`.
const ID_TOKEN_CLAIMS: [&str; 7] = ["iss", "aud", "nonce", "sub", "exp", "iat", "azp"];

/// Statuses a provider, or a gateway in front of it, might answer with, and some no server
/// should.
const STATUSES: [u16; 24] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 405, 408, 409, 410, 413, 429,
    500, 501, 502, 503, 504,
];

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        8 => prop::sample::select(STATUSES.as_slice()),
        1 => prop::sample::select([100u16, 199, 299, 399, 499, 599, 600, 999].as_slice()),
    ]
}

/// A string no token value is: ASCII words, unmarked.
fn plain() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ .:/-]{0,24}"
}

fn marked() -> impl Strategy<Value = String> {
    ".{0,30}".prop_map(|s| format!("{MARKER}{s}"))
}

/// Any JSON value, with the numbers at their edges: negative, fractional, beyond 2^53 and
/// beyond `i64`.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(
            [
                0.0,
                -1.0,
                0.5,
                299.999,
                1e300,
                -1e300,
                9_007_199_254_740_993.0,
                1.8446744073709552e19,
            ]
            .as_slice()
        )
        .prop_map(Value::from),
        prop::sample::select(["0", "600", "-5", "1e3", "9999999999999999999999", ""].as_slice())
            .prop_map(Value::from),
        plain().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((plain(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => Just(Change::Drop),
        2 => marked().prop_map(Change::Mark),
        3 => json_value().prop_map(Change::Replace),
    ]
}

/// Changes to one to three of `fields`, and sometimes a field of another name.
fn changes(fields: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, Change)>> {
    (
        prop::collection::vec((prop::sample::select(fields), change()), 1..4),
        prop::option::weighted(0.2, (plain(), change())),
    )
        .prop_map(|(named, other)| {
            let mut changes: Vec<(String, Change)> = named
                .into_iter()
                .map(|(name, change)| (name.to_owned(), change))
                .collect();
            changes.extend(other);
            changes
        })
}

/// A provider's JSON error: an OAuth error code or something in its place, and a description.
fn error_body() -> impl Strategy<Value = Value> {
    let code = prop_oneof![
        4 => prop::sample::select(
            [
                "invalid_grant",
                "invalid_request",
                "invalid_client",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "authorization_pending",
                "slow_down",
                "access_denied",
                "expired_token",
                "server_error",
                "temporarily_unavailable",
                "invalid_token",
            ]
            .as_slice()
        )
        .prop_map(Value::from),
        1 => json_value(),
    ];
    (code, prop::option::of(plain()), prop::option::of(plain())).prop_map(
        |(code, description, uri)| {
            let mut body = Map::new();
            body.insert("error".into(), code);
            if let Some(description) = description {
                body.insert("error_description".into(), description.into());
            }
            if let Some(uri) = uri {
                body.insert("error_uri".into(), uri.into());
            }
            Value::Object(body)
        },
    )
}

fn own_answer() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => (status(), error_body()).prop_map(|(s, b)| Fault::Json(s, b)),
        2 => (status(), json_value()).prop_map(|(s, b)| Fault::Json(s, b)),
        1 => status().prop_map(Fault::Empty),
        1 => status().prop_map(Fault::Status),
        1 => (
            status(),
            prop_oneof![
                Just("0".to_owned()),
                Just("120".to_owned()),
                Just("99999999999999".to_owned()),
                Just("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
                plain(),
            ],
        )
            .prop_map(|(s, v)| Fault::RetryAfter(s, v)),
        1 => Just(Fault::Garbage),
        1 => Just(Fault::Truncated),
        1 => Just(Fault::Down),
    ]
}

fn answer(stage: Stage) -> BoxedStrategy<Answer> {
    let fields: &'static [&'static str] = match stage {
        Stage::DeviceStart => &DEVICE_FIELDS,
        Stage::Userinfo => &USERINFO_FIELDS,
        Stage::Revoke => &[],
        _ => &TOKEN_FIELDS,
    };
    if fields.is_empty() {
        return prop_oneof![
            1 => Just(Answer::Real),
            3 => own_answer().prop_map(Answer::Own),
        ]
        .boxed();
    }
    prop_oneof![
        2 => Just(Answer::Real),
        4 => changes(fields).prop_map(Answer::Changed),
        3 => own_answer().prop_map(Answer::Own),
    ]
    .boxed()
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::sample::select(
            [
                Stage::CodeExchange,
                Stage::Callback,
                Stage::Refresh,
                Stage::DeviceStart,
                Stage::DevicePoll,
                Stage::Userinfo,
                Stage::Revoke,
            ]
            .as_slice(),
        ),
    )
        .prop_flat_map(|(broker, stage)| {
            let id_token = prop::option::weighted(
                if stage.checks_id_token() { 0.4 } else { 0.1 },
                (prop::sample::select(ID_TOKEN_CLAIMS.as_slice()), change()),
            );
            (answer(stage), id_token).prop_map(move |(answer, id_token)| Case {
                broker,
                stage,
                answer,
                id_token,
            })
        })
}

/// `changes` applied to `map`.
fn apply(map: &mut Map<String, Value>, changes: &[(String, Change)]) {
    for (name, change) in changes {
        match change {
            Change::Drop => {
                map.remove(name);
            }
            Change::Mark(text) => {
                map.insert(name.clone(), Value::String(text.clone()));
            }
            Change::Replace(value) => {
                map.insert(name.clone(), value.clone());
            }
        }
    }
}

fn tweak(changes: Vec<(String, Change)>) -> JsonTweak {
    Arc::new(move |map| apply(map, &changes))
}

/// A device start answer of the real shape.
fn device_answer(idp: &MockProvider) -> Map<String, Value> {
    let verification = format!("{}/device/verify", idp.issuer());
    let answer = json!({
        "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
        "user_code": "WDJB-MJHT",
        "verification_uri": verification,
        "verification_uri_complete": format!("{verification}?user_code=WDJB-MJHT"),
        "expires_in": 600,
        "interval": 5,
    });
    match answer {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Sets the case's answer at the provider.
fn arm(idp: &MockProvider, case: &Case, ready: &Ready) {
    if let Some((claim, change)) = &case.id_token {
        idp.set_id_token_tweak(Some(tweak(vec![((*claim).to_owned(), change.clone())])));
    }
    match &case.answer {
        Answer::Real => {}
        Answer::Own(fault) => idp.set_fault(case.stage.endpoint(), fault.clone()),
        Answer::Changed(changes) => match case.stage {
            Stage::DeviceStart => {
                let mut answer = device_answer(idp);
                apply(&mut answer, changes);
                idp.set_fault(Endpoint::Device, Fault::Json(200, Value::Object(answer)));
            }
            Stage::Userinfo => {
                // The answer of the real shape, for the token's own subject.
                let sub = match ready {
                    Ready::Tokens(access, _) => subject(access),
                    _ => String::new(),
                };
                let mut info = Map::new();
                info.insert("sub".into(), Value::String(sub));
                info.insert("email".into(), "alice@example.com".into());
                info.insert("email_verified".into(), true.into());
                apply(&mut info, changes);
                idp.set_userinfo_override(Some(Value::Object(info)));
            }
            _ => idp.set_token_response_tweak(Some(tweak(changes.clone()))),
        },
    }
}

/// Puts the provider back as it answers on its own.
fn disarm(idp: &MockProvider) {
    idp.set_fault_all(Fault::None);
    idp.set_id_token_tweak(None);
    idp.set_token_response_tweak(None);
    idp.set_userinfo_override(None);
}

fn text(reply: &Reply, name: &str) -> String {
    reply.body[name].as_str().unwrap_or_default().to_owned()
}

/// The subject of a compact JWT.
fn subject(token: &str) -> String {
    jwt(token).1["sub"].as_str().unwrap_or_default().to_owned()
}

/// What the case's call needs from a real flow run before the provider's answer is changed.
enum Ready {
    Nothing,
    /// The provider's redirect after a login: to the client's loopback listener, or to this
    /// server's callback.
    Redirect(url::Url),
    /// Tokens of a finished login: access and refresh.
    Tokens(String, String),
    DeviceCode(String),
}

async fn prepare(h: &Harness, fw: Framework, stage: Stage) -> Ready {
    match stage {
        Stage::CodeExchange => Ready::Redirect(browser_login(h, fw, LOOPBACK).await.1),
        Stage::Callback => Ready::Redirect(browser_login(h, fw, APP_CALLBACK).await.1),
        Stage::Refresh | Stage::Userinfo | Stage::Revoke => {
            let login = client_code_flow(h, fw).await;
            assert_eq!(login.status, 200, "a login on {fw:?}: {login:?}");
            Ready::Tokens(text(&login, "access_token"), text(&login, "refresh_token"))
        }
        Stage::DeviceStart => Ready::Nothing,
        Stage::DevicePoll => {
            let started = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            assert_eq!(started.status, 200, "a device start on {fw:?}: {started:?}");
            assert!(
                h.idp.approve_device(&text(&started, "user_code")),
                "the provider knows the user code: {started:?}"
            );
            Ready::DeviceCode(text(&started, "device_code"))
        }
    }
}

/// The call of the case, against a provider armed with its answer.
async fn call(h: &Harness, fw: Framework, stage: Stage, ready: &Ready) -> Reply {
    match (stage, ready) {
        (Stage::CodeExchange, Ready::Redirect(redirect)) => {
            client_token_call(h, fw, redirect).await
        }
        (Stage::Callback, Ready::Redirect(redirect)) => {
            let mut ours =
                url::Url::parse(&h.url(fw, "/api/auth/v2/callback")).expect("a test server URL");
            ours.set_query(redirect.query());
            h.get_url(&ours).await
        }
        (Stage::Refresh, Ready::Tokens(_, refresh)) => {
            h.post_form(fw, TOKEN, &[("refresh-token", refresh)]).await
        }
        (Stage::DeviceStart, _) => h.post_form(fw, "/api/auth/v2/device", &[]).await,
        (Stage::DevicePoll, Ready::DeviceCode(code)) => {
            h.post_form(fw, TOKEN, &[("device-code", code)]).await
        }
        (Stage::Userinfo, Ready::Tokens(access, _)) => {
            h.bearer(fw, "/api/auth/v2/userinfo", access).await
        }
        (Stage::Revoke, Ready::Tokens(_, refresh)) => {
            h.post_form(
                fw,
                "/api/auth/v2/revoke",
                &[("token", refresh), ("token_type_hint", "refresh_token")],
            )
            .await
        }
        _ => unreachable!("prepare gives each stage what it needs"),
    }
}

async fn run_on(h: &Harness, fw: Framework, case: &Case) -> (Reply, Ready) {
    let ready = prepare(h, fw, case.stage).await;
    arm(&h.idp, case, &ready);
    let started = Instant::now();
    let reply = tokio::time::timeout(CASE_BOUND, call(h, fw, case.stage, &ready)).await;
    disarm(&h.idp);
    let reply = reply.unwrap_or_else(|_| panic!("no answer within {CASE_BOUND:?} on {fw:?}"));
    assert!(
        started.elapsed() < CASE_BOUND,
        "took {:?} on {fw:?}",
        started.elapsed()
    );
    (reply, ready)
}

/// Whether the case's userinfo answer names another subject than `sub`, or none.
fn changes_subject(case: &Case, sub: &str) -> bool {
    let Answer::Changed(changes) = &case.answer else {
        return false;
    };
    match last_changes(changes)
        .into_iter()
        .find(|(name, _)| name == "sub")
    {
        None => false,
        Some((_, Change::Replace(Value::String(other)))) => other != sub,
        Some(_) => true,
    }
}

/// What a successful answer of `stage` is.
fn succeeded(stage: Stage, reply: &Reply) -> bool {
    match stage {
        Stage::CodeExchange | Stage::Callback | Stage::Refresh | Stage::DevicePoll => {
            reply.status == 200 && !text(reply, "access_token").is_empty()
        }
        Stage::DeviceStart => reply.status == 200 && !text(reply, "device_code").is_empty(),
        Stage::Userinfo => reply.status == 200 && reply.body.is_object(),
        Stage::Revoke => reply.status == 200,
    }
}

fn check(case: &Case, fw: Framework, reply: &Reply, ready: &Ready) {
    let shown = || {
        format!(
            "{fw:?} answered {} ({}) to {case:?}",
            reply.status, reply.raw_body
        )
    };
    assert!(
        reply.status < 500 || matches!(reply.status, 502..=504),
        "{}",
        shown()
    );
    assert_error_body_and_no_store(reply, &shown());
    assert!(
        reply.status < 400 || !reply.raw_body.contains(MARKER),
        "a value the provider sent is echoed: {}",
        shown()
    );
    if case.is_real() {
        assert!(
            succeeded(case.stage, reply),
            "the provider's own answer failed: {}",
            shown()
        );
    }
    if case.stage.checks_id_token() && case.breaks_id_token() {
        assert_ne!(
            reply.status,
            200,
            "a broken ID token was taken: {}",
            shown()
        );
    }
    if reply.status == 200 {
        match (case.stage, ready) {
            (Stage::DeviceStart | Stage::Revoke, _) => {}
            // The answer is the user in py-oidc-auth's shape, which has no `sub`: the provider's
            // userinfo must have named the token's subject for it.
            (Stage::Userinfo, Ready::Tokens(access, _)) => assert!(
                case.broker || !changes_subject(case, &subject(access)),
                "userinfo of another subject: {}",
                shown()
            ),
            _ => assert!(succeeded(case.stage, reply), "{}", shown()),
        }
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    proxy: Harness,
    broker: Harness,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(2);
        let (proxy, broker) = runtime.block_on(async {
            let allow =
                |b: oidc_auth::OidcConfigBuilder| b.login_redirect_uris([APP_CALLBACK.to_owned()]);
            let proxy = Harness::with(flow_provider().await, allow, None).await;
            let broker =
                serve_broker(provider().await, Arc::new(MemoryStore::new()), allow, None).await;
            (proxy, broker)
        });
        Fixture {
            runtime,
            proxy,
            broker,
        }
    })
}

fn run(case: &Case) {
    let f = fixture();
    let h = if case.broker { &f.broker } else { &f.proxy };
    let replies: Vec<(Framework, Reply, Ready)> = f.runtime.block_on(async {
        let mut replies = Vec::new();
        for fw in FRAMEWORKS {
            let (reply, ready) = run_on(h, fw, case).await;
            replies.push((fw, reply, ready));
        }
        replies
    });
    for (fw, reply, ready) in &replies {
        check(case, *fw, reply, ready);
    }
    if let [(_, axum, _), (_, actix, _)] = replies.as_slice() {
        assert_frameworks_agree(axum, actix, case);
    }
}

// Key sets and discovery documents.

/// The fields of the discovery document, those validation reads first.
const DISCOVERY_FIELDS: [&str; 10] = [
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
    "revocation_endpoint",
    "device_authorization_endpoint",
    "authorization_response_iss_parameter_supported",
    "id_token_signing_alg_values_supported",
];

/// The fields of a published key: those of an RSA and of an EC key, then the optional ones.
const KEY_FIELDS: [&str; 12] = [
    "kty", "n", "e", "crv", "x", "y", "kid", "use", "alg", "key_ops", "x5c", "x5t",
];

#[derive(Clone, Debug)]
enum Document {
    Real,
    /// The real document with these fields changed (of the provider's signing key, for the key
    /// set), and for the key set these entries added.
    Changed(Vec<(String, Change)>, Vec<Value>),
    Own(Fault),
}

fn document(fields: &'static [&'static str], extra_keys: bool) -> impl Strategy<Value = Document> {
    let extra = if extra_keys { 0..4usize } else { 0..1usize };
    prop_oneof![
        2 => Just(Document::Real),
        5 => (changes(fields), prop::collection::vec(json_value(), extra))
            .prop_map(|(changes, extra)| Document::Changed(changes, extra)),
        2 => own_answer().prop_map(Document::Own),
    ]
}

#[derive(Clone, Debug)]
struct KeyCase {
    /// The provider signs with ES256 rather than RS256.
    ec: bool,
    discovery: Document,
    jwks: Document,
}

fn key_case() -> impl Strategy<Value = KeyCase> {
    (
        any::<bool>(),
        document(&DISCOVERY_FIELDS, false),
        document(&KEY_FIELDS, true),
    )
        .prop_map(|(ec, discovery, jwks)| KeyCase {
            ec,
            discovery,
            jwks,
        })
}

/// What a change does to whether a document still vouches for the provider's token: `Some`
/// when that is certain, `None` when either answer is right.
type Verdict = Option<bool>;

/// Both must hold: a certain refusal wins, then an uncertain answer.
fn both(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (None, _) | (_, None) => None,
        _ => Some(true),
    }
}

/// Every one must hold.
fn all_of(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut all = Some(true);
    for verdict in verdicts {
        all = both(all, verdict);
    }
    all
}

/// A value that may be an endpoint on a host that is not loopback over plain http, which a
/// document may not name (see `allow_insecure_http`).
fn may_be_plain_http(change: &Change) -> bool {
    match change {
        Change::Replace(value) => value.to_string().to_ascii_lowercase().contains("http:"),
        _ => false,
    }
}

/// The change each field ends with: a later change of a field replaces an earlier one.
fn last_changes(changes: &[(String, Change)]) -> Vec<&(String, Change)> {
    changes
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| !changes[i + 1..].iter().any(|(later, _)| later == name))
        .map(|(_, change)| change)
        .collect()
}

fn discovery_verdict(changes: &[(String, Change)]) -> Verdict {
    all_of(
        last_changes(changes)
            .into_iter()
            .map(|(name, change)| match name.as_str() {
                "issuer" | "jwks_uri" => Some(false),
                _ if may_be_plain_http(change) => None,
                _ => Some(true),
            }),
    )
}

fn key_verdict(ec: bool, alg: &str, changes: &[(String, Change)]) -> Verdict {
    let material: &[&str] = if ec {
        &["kty", "crv", "x", "y"]
    } else {
        &["kty", "n", "e"]
    };
    all_of(last_changes(changes).into_iter().map(|(name, change)| {
        match (name.as_str(), change) {
            (name, _) if material.contains(&name) => Some(false),
            ("kid", Change::Drop) => None,
            ("kid", _) => Some(false),
            ("use" | "alg" | "key_ops", Change::Drop) => Some(true),
            ("use", Change::Replace(value)) => Some(value.as_str() == Some("sig")),
            ("alg", Change::Replace(value)) => Some(value.as_str() == Some(alg)),
            ("key_ops", Change::Replace(Value::Array(ops))) => {
                Some(ops.iter().any(|op| op.as_str() == Some("verify")))
            }
            ("use" | "alg" | "key_ops", _) => Some(false),
            // The other key type's fields and the certificate fields are not read.
            _ => Some(true),
        }
    }))
}

impl KeyCase {
    fn verdict(&self) -> Verdict {
        let discovery = match &self.discovery {
            Document::Real => Some(true),
            Document::Changed(changes, _) => discovery_verdict(changes),
            Document::Own(_) => Some(false),
        };
        let alg = if self.ec { "ES256" } else { "RS256" };
        let jwks = match &self.jwks {
            Document::Real => Some(true),
            Document::Changed(changes, _) => key_verdict(self.ec, alg, changes),
            Document::Own(_) => Some(false),
        };
        both(discovery, jwks)
    }
}

/// A provider, its documents as it serves them, a token it signed and one signed by another
/// key under its key's `kid`.
struct Signer {
    idp: MockProvider,
    discovery: Map<String, Value>,
    jwks: Map<String, Value>,
    token: String,
    forged: String,
}

impl Signer {
    async fn start(alg: SigningAlg) -> Self {
        let idp = MockProvider::start_with_alg(alg)
            .await
            .expect("a mock provider");
        let attacker = MockProvider::start_with_alg(alg)
            .await
            .expect("a mock provider");
        let get = |url: String| async move {
            let answer = reqwest::get(&url).await.expect("the provider answers");
            match answer.json::<Value>().await.expect("a JSON document") {
                Value::Object(map) => map,
                other => panic!("{url} is not an object: {other}"),
            }
        };
        let discovery = get(idp.discovery_url()).await;
        let jwks = get(idp.jwks_uri()).await;
        let token = idp.token().audience(AUDIENCE).sign();
        let forged = attacker
            .token()
            .audience(AUDIENCE)
            .claim("iss", Value::String(idp.issuer()))
            .kid(&idp.current_kid())
            .sign();
        Self {
            idp,
            discovery,
            jwks,
            token,
            forged,
        }
    }

    /// Serves the case's documents.
    fn arm(&self, case: &KeyCase) {
        match &case.discovery {
            Document::Real => {}
            Document::Own(fault) => self.idp.set_fault(Endpoint::Discovery, fault.clone()),
            Document::Changed(changes, _) => {
                let mut doc = self.discovery.clone();
                apply(&mut doc, changes);
                self.idp
                    .set_fault(Endpoint::Discovery, Fault::Json(200, Value::Object(doc)));
            }
        }
        match &case.jwks {
            Document::Real => {}
            Document::Own(fault) => self.idp.set_fault(Endpoint::Jwks, fault.clone()),
            Document::Changed(changes, extra) => {
                let kid = self.idp.current_kid();
                let mut keys: Vec<Value> =
                    self.jwks["keys"].as_array().cloned().unwrap_or_default();
                for key in &mut keys {
                    if key["kid"].as_str() == Some(kid.as_str())
                        && let Value::Object(fields) = key
                    {
                        apply(fields, changes);
                    }
                }
                keys.extend(extra.iter().cloned());
                self.idp
                    .set_fault(Endpoint::Jwks, Fault::Json(200, json!({ "keys": keys })));
            }
        }
    }
}

struct KeyFixture {
    runtime: tokio::runtime::Runtime,
    rsa: Signer,
    ec: Signer,
}

fn key_fixture() -> &'static KeyFixture {
    static FIXTURE: OnceLock<KeyFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(2);
        let (rsa, ec) = runtime.block_on(async {
            (
                Signer::start(SigningAlg::RS256).await,
                Signer::start(SigningAlg::ES256).await,
            )
        });
        KeyFixture { runtime, rsa, ec }
    })
}

/// A new instance for `signer`, with nothing fetched yet.
fn cold(signer: &Signer) -> OidcAuth {
    let config = OidcConfig::builder()
        .discovery_url(signer.idp.discovery_url())
        .client_id("test-client")
        .audience(AUDIENCE)
        .build()
        .expect("a valid configuration");
    OidcAuth::new(config)
}

/// The validation of `token`: the status of its refusal, if refused.
async fn validate(auth: &OidcAuth, token: &str) -> Result<(), u16> {
    let validated = tokio::time::timeout(CASE_BOUND, auth.validate(token))
        .await
        .unwrap_or_else(|_| panic!("no verdict within {CASE_BOUND:?}"));
    validated.map(|_| ()).map_err(|e| e.status())
}

fn run_keys(case: &KeyCase) {
    let f = key_fixture();
    let signer = if case.ec { &f.ec } else { &f.rsa };
    let (genuine, forged, forged_again) = f.runtime.block_on(async {
        signer.arm(case);
        // The forged token first, at a cold start and then once more after the provider's
        // token, with whatever the instance fetched for that.
        let auth = cold(signer);
        let forged = validate(&auth, &signer.forged).await;
        let genuine = validate(&auth, &signer.token).await;
        let forged_again = validate(&auth, &signer.forged).await;
        signer.idp.set_fault_all(Fault::None);
        (genuine, forged, forged_again)
    });
    for (which, result) in [
        ("the provider's token", genuine),
        ("a forged token", forged),
        ("a forged token", forged_again),
    ] {
        if let Err(status) = result {
            assert!(
                status == 401 || status == 503,
                "{which} was refused with {status}: {case:?}"
            );
        }
    }
    assert!(
        forged.is_err() && forged_again.is_err(),
        "a forged token was accepted: {case:?}"
    );
    if let Some(vouched) = case.verdict() {
        assert_eq!(
            genuine.is_ok(),
            vouched,
            "the provider's token was {genuine:?}: {case:?}"
        );
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn a_token_is_accepted_exactly_when_the_provider_s_documents_vouch_for_it(case in key_case()) {
        run_keys(&case);
    }

    #[test]
    fn any_provider_answer_is_met_with_a_clean_answer_on_every_endpoint_that_asks(case in case()) {
        run(&case);
    }
}
