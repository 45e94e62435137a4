//! Property tests over protected routes through both frameworks: tokens the provider really
//! signed, with arbitrary claims (types, nesting, scopes, groups, roles, audience, expiry),
//! sent as they are, with a tampered signature or under another spelling of the scheme, to
//! every route of the test application (`/me`, the four policy routes, the optional `/feed`,
//! and `POST /upload` with a body).
//!
//! For every case:
//! - axum and actix-web agree on the status, the error code and the challenge;
//! - the status is the one the token calls for: 401 for a token of another audience, expired
//!   or tampered with; 403 `insufficient_scope` for a valid one without a route's scopes;
//!   otherwise 200, or 403 `access_denied` on a policy route whose claims do not hold;
//!   `/feed` is always 200 and says whether the token counted;
//! - a refusal has the JSON error body and a challenge of printable ASCII starting `Bearer`;
//! - no claim value of the token appears in a refusal's body or challenge (each carries a
//!   marker the answer is searched for); an accepted `/me` names the token's own subject.
//!
//! 10 000 cases per property unless `PROPTEST_CASES` says otherwise (CI sets it to 10 000).

use std::sync::OnceLock;

use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, Reply, property_runtime, proptest_config,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// What every claim value the cases make carries, so that an echo of any of them can be found.
/// The `~` is in no base64 alphabet, so the marker cannot turn up by chance in a token.
const MARKER: &str = "mrk~z";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    harness: Harness,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(2);
        let harness = runtime.block_on(Harness::start());
        Fixture { runtime, harness }
    })
}

/// The routes, and the scopes each requires (the test application's policies).
const ROUTES: [(&str, &[&str]); 7] = [
    ("/me", &[]),
    ("/admin", &["admin"]),
    ("/ops", &[]),
    ("/verified", &[]),
    ("/readwrite", &["read", "write"]),
    ("/feed", &[]),
    ("/upload", &[]),
];

/// A marked string of any characters.
fn marked() -> impl Strategy<Value = String> {
    ".{0,24}".prop_map(|s| format!("{MARKER}{s}"))
}

/// A JSON value whose strings are all marked, nested a few levels.
fn marked_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        marked().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(marked(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A claim that one of the routes reads: left out, a meaningful value, or anything.
fn claim(meaningful: &'static [fn() -> Value]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        4 => prop::sample::select(meaningful).prop_map(|make| Some(make())),
        1 => marked_json().prop_map(Some),
    ]
}

#[derive(Clone, Debug)]
enum Spelling {
    /// `Bearer <token>`.
    AsIs,
    /// One character of the signature changed.
    Tampered(usize),
    /// The scheme in lower case.
    LowerCase,
    /// Two spaces after the scheme.
    TwoSpaces,
}

#[derive(Clone, Debug)]
struct Case {
    route: usize,
    ours: bool,
    expired: bool,
    sub: String,
    /// Scope words, `None` for no `scope` claim.
    scope: Option<Vec<String>>,
    groups: Option<Value>,
    realm_access: Option<Value>,
    email_verified: Option<Value>,
    tenant: Option<Value>,
    extra: Vec<(String, Value)>,
    spelling: Spelling,
    body: String,
}

fn case() -> impl Strategy<Value = Case> {
    let scope_word = prop_oneof![
        4 => prop::sample::select(["openid", "admin", "read", "write", "Admin", "admin:all"].as_slice())
            .prop_map(str::to_owned),
        1 => marked(),
    ];
    (
        0..ROUTES.len(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        marked(),
        prop::option::weighted(0.85, prop::collection::vec(scope_word, 0..5)),
        claim(&[
            || json!(["admins"]),
            || json!(["staff"]),
            || json!(["staff", "admins"]),
            || json!("admins"),
            || json!([]),
        ]),
        claim(&[
            || json!({"roles": ["ops"]}),
            || json!({"roles": ["sre", "dev"]}),
            || json!({"roles": "ops"}),
            || json!({"roles": []}),
        ]),
        claim(&[
            || json!(true),
            || json!(false),
            || json!("true"),
            || json!(1),
        ]),
        claim(&[|| json!("acme"), || json!(["acme"]), || json!("other")]),
        prop::collection::vec((marked(), marked_json()), 0..3),
        prop_oneof![
            8 => Just(Spelling::AsIs),
            1 => any::<usize>().prop_map(Spelling::Tampered),
            1 => Just(Spelling::LowerCase),
            1 => Just(Spelling::TwoSpaces),
        ],
        marked(),
    )
        .prop_map(
            |(
                route,
                ours,
                expired,
                sub,
                scope,
                groups,
                realm_access,
                email_verified,
                tenant,
                extra,
                spelling,
                body,
            )| Case {
                route,
                ours,
                expired,
                sub,
                scope,
                groups,
                realm_access,
                email_verified,
                tenant,
                extra,
                spelling,
                body,
            },
        )
}

fn token(case: &Case) -> String {
    let idp = &fixture().harness.idp;
    let mut builder = idp
        .token()
        .audience(if case.ours {
            AUDIENCE
        } else {
            "mrk~z-another-api"
        })
        .sub(&case.sub)
        .expires_in(if case.expired { -3600 } else { 3600 });
    for (name, value) in &case.extra {
        builder = builder.claim(name, value.clone());
    }
    if let Some(words) = &case.scope {
        builder = builder.scope(&words.join(" "));
    }
    for (name, value) in [
        ("groups", &case.groups),
        ("realm_access", &case.realm_access),
        ("email_verified", &case.email_verified),
        ("tenant", &case.tenant),
    ] {
        if let Some(value) = value {
            builder = builder.claim(name, value.clone());
        }
    }
    builder.sign()
}

fn authorization(case: &Case, token: &str) -> String {
    match case.spelling {
        Spelling::AsIs => format!("Bearer {token}"),
        Spelling::Tampered(at) => {
            let dot = token.rfind('.').unwrap_or_default();
            let signature = &token[dot + 1..];
            let at = at % signature.len().max(1);
            let mut bytes = token.as_bytes().to_vec();
            let i = dot + 1 + at;
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            format!("Bearer {}", String::from_utf8_lossy(&bytes))
        }
        Spelling::LowerCase => format!("bearer {token}"),
        Spelling::TwoSpaces => format!("Bearer  {token}"),
    }
}

async fn send(fw: Framework, path: &str, authorization: &str, body: &str) -> Reply {
    let h = &fixture().harness;
    let value = reqwest::header::HeaderValue::from_str(authorization).expect("a header value");
    let request = if path == "/upload" {
        h.client()
            .post(h.url(fw, path))
            .header("content-type", "text/plain")
            .body(body.to_owned())
    } else {
        h.client().get(h.url(fw, path))
    };
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        request.header("authorization", value).send(),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within 10 s on {fw:?} {path}"))
    .unwrap_or_else(|e| panic!("no answer on {fw:?} {path}: {e}"));
    oidc_auth_tests::into_reply(response).await
}

/// Whether the token's scopes hold every scope `required` names, as whole words.
fn has_scopes(case: &Case, required: &[&str]) -> bool {
    let granted = case.scope.clone().unwrap_or_default().join(" ");
    required
        .iter()
        .all(|r| granted.split(' ').any(|word| word == *r))
}

fn check(case: &Case, token: &str, axum: &Reply, actix: &Reply) {
    let (path, scopes) = ROUTES[case.route];
    assert_eq!(
        (axum.status, axum.error(), &axum.challenge),
        (actix.status, actix.error(), &actix.challenge),
        "axum and actix-web disagree on {path}: {} / {}",
        axum.raw_body,
        actix.raw_body
    );
    let reply = axum;
    // Another spelling of the scheme may be taken or refused, but alike on both frameworks
    // (above) and never as a 5xx.
    let counts = case.ours && !case.expired && matches!(case.spelling, Spelling::AsIs);
    let spelled = matches!(case.spelling, Spelling::LowerCase | Spelling::TwoSpaces);
    let answer = (reply.status, reply.error());
    if path == "/feed" {
        assert_eq!(reply.status, 200, "{path}: {}", reply.raw_body);
        if !spelled {
            assert_eq!(reply.body["authenticated"], json!(counts), "{path}");
        }
    } else if spelled {
        assert!(reply.status < 500, "{path}: {}", reply.raw_body);
    } else if !counts {
        assert_eq!(
            answer,
            (401, Some("invalid_token")),
            "{path}: {}",
            reply.raw_body
        );
    } else if !has_scopes(case, scopes) {
        assert_eq!(
            answer,
            (403, Some("insufficient_scope")),
            "{path}: {}",
            reply.raw_body
        );
    } else if matches!(path, "/me" | "/upload") {
        assert_eq!(reply.status, 200, "{path}: {}", reply.raw_body);
        assert_eq!(reply.body["sub"], json!(case.sub), "{path}");
    } else {
        assert!(
            reply.status == 200 || answer == (403, Some("access_denied")),
            "{path}: {}",
            reply.raw_body
        );
    }
    if reply.status >= 400 {
        let field = |name: &str| reply.body.get(name).and_then(Value::as_str);
        assert!(
            field("error").is_some() && field("detail").is_some(),
            "{path} answered {} without the JSON error body: {}",
            reply.status,
            reply.raw_body
        );
        let lowered = reply.raw_body.to_lowercase();
        assert!(
            !lowered.contains(MARKER) && !lowered.contains(&token.to_lowercase()),
            "{path} echoed the token or a claim: {}",
            reply.raw_body
        );
        if let Some(challenge) = &reply.challenge {
            assert!(
                challenge.starts_with("Bearer")
                    && challenge.bytes().all(|b| (0x20..0x7f).contains(&b))
                    && !challenge.to_lowercase().contains(MARKER),
                "{path} challenge {challenge:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn tokens_with_any_claims_get_the_answer_they_call_for_on_every_route(case in case()) {
        let f = fixture();
        let token = token(&case);
        let header = authorization(&case, &token);
        let path = ROUTES[case.route].0;
        let (axum, actix) = f.runtime.block_on(async {
            let mut replies = Vec::new();
            for fw in FRAMEWORKS {
                replies.push(send(fw, path, &header, &case.body).await);
            }
            (replies.remove(0), replies.remove(0))
        });
        check(&case, &token, &axum, &actix);
    }
}
