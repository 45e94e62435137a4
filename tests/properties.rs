//! Property tests over the `Authorization` header, token bytes, JOSE headers and claims: no
//! panic, an answer of the right kind within a time bound for every case, and only a correctly
//! signed, valid token is accepted. 10 000 cases per property unless `PROPTEST_CASES` says
//! otherwise (CI sets it to 10 000).

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::testing::MockProvider;
use oidc_auth::{ErrorKind, NoPolicy, OidcAuth};
use oidc_auth_tests::{AUDIENCE, base_config, property_runtime, proptest_config};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    idp: MockProvider,
    auth: OidcAuth,
}

/// One provider and one warmed-up `OidcAuth` for every case (the validated-token cache is off,
/// so every case goes through the full validation).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(1);
        let (idp, auth) = runtime.block_on(async {
            let idp = MockProvider::start().await.expect("provider");
            let auth = OidcAuth::new(
                base_config(&idp)
                    .token_cache_capacity(0)
                    .build()
                    .expect("config"),
            );
            auth.warm_up().await.expect("keys load");
            (idp, auth)
        });
        Fixture { runtime, idp, auth }
    })
}

/// The longest any case may take: far above a validation (microseconds) or a JWKS fetch on
/// loopback (milliseconds), and above a stall of a busy CI machine, so that only an unbounded
/// path (a loop over hostile input, a wait on the network that never ends) fails it.
const CASE_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

fn authorize(header: &[u8]) -> Result<(), ErrorKind> {
    let f = fixture();
    let started = std::time::Instant::now();
    let result = f
        .runtime
        .block_on(f.auth.authorize::<NoPolicy>([header]))
        .map(|_| ())
        .map_err(|e| e.kind());
    let took = started.elapsed();
    assert!(took < CASE_BOUND, "a case took {took:?}");
    result
}

/// A value for one JOSE header field: left as the provider writes it, removed, or replaced.
#[derive(Clone, Debug)]
enum Field {
    Kept,
    Removed,
    Set(Value),
}

/// Header variations on a correctly signed token, each with whether it may be accepted.
fn alg_field() -> impl Strategy<Value = (Field, bool)> {
    prop_oneof![
        Just((Field::Kept, true)),
        Just((Field::Set(json!("RS256")), true)),
        Just((Field::Removed, false)),
        Just((Field::Set(json!("rs256")), false)),
        Just((Field::Set(json!("PS256")), false)),
        Just((Field::Set(json!("RS512")), false)),
        Just((Field::Set(json!("ES256")), false)),
        Just((Field::Set(json!("HS256")), false)),
        Just((Field::Set(json!("none")), false)),
        Just((Field::Set(json!(256)), false)),
    ]
}

fn kid_field() -> impl Strategy<Value = (Field, bool)> {
    prop_oneof![
        Just((Field::Kept, true)),
        // The provider publishes one key: a token without a kid is checked against it.
        Just((Field::Removed, true)),
        Just((Field::Set(json!("not-a-published-kid")), false)),
        Just((Field::Set(json!("")), false)),
        Just((Field::Set(json!(1)), false)),
        Just((Field::Set(json!(null)), false)),
    ]
}

fn typ_field() -> impl Strategy<Value = (Field, bool)> {
    prop_oneof![
        Just((Field::Kept, true)),
        Just((Field::Removed, true)),
        Just((Field::Set(json!("jwt")), true)),
        Just((Field::Set(json!("at+jwt")), true)),
        Just((Field::Set(json!("AT+JWT")), true)),
        Just((Field::Set(json!("application/at+jwt")), true)),
        Just((Field::Set(json!("logout+jwt")), false)),
        Just((Field::Set(json!("JWS")), false)),
        Just((Field::Set(json!(["JWT"])), false)),
    ]
}

/// An added header: ignored (keys and key URLs are never taken from a token) or refused
/// (anything that would change how the token is read).
fn added_field() -> impl Strategy<Value = (Option<(&'static str, Value)>, bool)> {
    prop_oneof![
        Just((None, true)),
        Just((Some(("jku", json!("http://127.0.0.1:9/jwks"))), true)),
        Just((Some(("x5u", json!("http://127.0.0.1:9/cert"))), true)),
        Just((Some(("jwk", json!({"kty": "oct", "k": "AAAA"}))), true)),
        Just((Some(("x-app", json!({"any": [1, 2]}))), true)),
        Just((Some(("crit", json!(["exp"]))), false)),
        Just((Some(("crit", json!([]))), false)),
        Just((Some(("b64", json!(false))), false)),
        Just((Some(("zip", json!("DEF"))), false)),
        Just((Some(("cty", json!("JWT"))), false)),
        Just((Some(("enc", json!("A128GCM"))), false)),
    ]
}

fn set_field(
    builder: oidc_auth::testing::TokenBuilder,
    name: &str,
    field: &Field,
) -> oidc_auth::testing::TokenBuilder {
    match field {
        Field::Kept => builder,
        Field::Removed => builder.remove_header(name),
        Field::Set(value) => builder.header(name, value.clone()),
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Any header value: rejected as missing (401), malformed (400) or invalid (401).
    #[test]
    fn arbitrary_authorization_headers_are_refused_cleanly(header in prop_oneof![
        9 => prop::collection::vec(any::<u8>(), 0..512),
        1 => prop::collection::vec(any::<u8>(), 8000..9000),
    ]) {
        let result = authorize(&header);
        prop_assert!(matches!(result, Err(ErrorKind::MissingToken | ErrorKind::InvalidRequest | ErrorKind::InvalidToken)), "{result:?}");
    }

    /// Bearer tokens made of JWS-like characters, short and past the token limit: never
    /// accepted.
    #[test]
    fn arbitrary_bearer_tokens_are_invalid(token in prop_oneof![
        9 => "[A-Za-z0-9_.=+/-]{1,600}",
        1 => "[A-Za-z0-9_.-]{8000,9000}",
    ]) {
        let result = authorize(format!("Bearer {token}").as_bytes());
        prop_assert!(matches!(result, Err(ErrorKind::InvalidToken | ErrorKind::InvalidRequest)), "{result:?}");
    }

    /// Three well-formed segments with arbitrary JSON in header and payload and a random
    /// signature: never accepted, and never anything but 401.
    #[test]
    fn arbitrary_jose_headers_and_claims_are_invalid(header in json_value(), claims in json_value(), sig in prop::collection::vec(any::<u8>(), 0..300)) {
        let token = format!("{}.{}.{}", b64(&header), b64(&claims), URL_SAFE_NO_PAD.encode(sig));
        let result = authorize(format!("Bearer {token}").as_bytes());
        prop_assert_eq!(result, Err(ErrorKind::InvalidToken));
    }

    /// Correctly signed tokens with arbitrary extra claims and headers are accepted exactly when
    /// their registered claims are valid; a flipped signature bit is always refused.
    #[test]
    fn only_correctly_signed_valid_tokens_are_accepted(
        extra in prop::collection::btree_map("[a-z]{1,8}", json_value(), 0..4),
        exp_offset in -7_200i64..7_200,
        with_aud in any::<bool>(),
        flip in any::<usize>(),
    ) {
        // Keep clear of the leeway boundary, where a second ticking over would decide.
        prop_assume!(!(-63..=-57).contains(&exp_offset));
        let f = fixture();
        let mut builder = f.idp.token().expires_in(exp_offset);
        if with_aud {
            builder = builder.audience(AUDIENCE);
        }
        for (name, value) in &extra {
            // The registered claims are the oracle's; `events` makes a security event token,
            // which is never an access token.
            if !["iss", "sub", "aud", "exp", "nbf", "iat", "events"].contains(&name.as_str()) {
                builder = builder.claim(name, value.clone());
            }
        }
        let token = builder.sign();
        let valid = with_aud && exp_offset > -60;
        let result = authorize(format!("Bearer {token}").as_bytes());
        prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
        let (head, sig) = token.rsplit_once('.').unwrap_or_default();
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
        if !bytes.is_empty() {
            let i = flip % bytes.len();
            bytes[i] ^= 1 << (flip % 8);
        }
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes));
        prop_assert_eq!(authorize(format!("Bearer {tampered}").as_bytes()), Err(ErrorKind::InvalidToken));
    }

    /// Correctly signed, valid tokens whose JOSE header varies (its algorithm, kid and type;
    /// ignored and refused extra fields): accepted exactly when every field is one the
    /// validation allows, whatever the others are. The same valid claims under another
    /// header, or the same header over edited claims, never pass on the first's signature.
    #[test]
    fn only_allowed_headers_are_accepted_on_signed_tokens(
        (alg, alg_ok) in alg_field(),
        (kid, kid_ok) in kid_field(),
        (typ, typ_ok) in typ_field(),
        (added, added_ok) in added_field(),
        sub in "[a-z]{1,12}",
    ) {
        let f = fixture();
        let mut builder = f.idp.token().audience(AUDIENCE).sub(&sub);
        builder = set_field(builder, "alg", &alg);
        builder = set_field(builder, "kid", &kid);
        builder = set_field(builder, "typ", &typ);
        if let Some((name, value)) = &added {
            builder = builder.header(name, value.clone());
        }
        let token = builder.sign();
        let allowed = alg_ok && kid_ok && typ_ok && added_ok;
        // An unknown kid asks for the key set; should that fetch fail on a loaded machine, the
        // refusal is 503 rather than 401, a refusal all the same.
        let unknown_kid = matches!(&kid, Field::Set(Value::String(k)) if !k.is_empty());
        let refused = |result: Result<(), ErrorKind>| {
            result == Err(ErrorKind::InvalidToken)
                || (unknown_kid && result == Err(ErrorKind::Unavailable))
        };
        let result = authorize(format!("Bearer {token}").as_bytes());
        prop_assert_eq!(result.is_ok(), allowed, "{:?}", result);
        if !allowed {
            prop_assert!(refused(result), "{:?}", result);
        }
        let parts: Vec<&str> = token.split('.').collect();
        // The signature of this token over another payload: refused.
        let other = f.idp.token().audience(AUDIENCE).sub(&format!("{sub}x")).sign();
        let other_payload = other.split('.').nth(1).unwrap_or_default();
        let spliced = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        prop_assert_eq!(authorize(format!("Bearer {spliced}").as_bytes()), Err(ErrorKind::InvalidToken));
        // The signature of this token under another header (one more ignored field): refused.
        let mut header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(parts[0]).unwrap_or_default(),
        )
        .unwrap_or_default();
        if let Some(fields) = header.as_object_mut() {
            fields.insert("x-edited".into(), json!(true));
        }
        let reheaded = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
        let result = authorize(format!("Bearer {reheaded}").as_bytes());
        prop_assert!(refused(result), "{:?}", result);
    }
}
