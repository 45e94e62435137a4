//! Property tests over the `Authorization` header, token bytes, JOSE headers and claims: no
//! panic, an answer of the right kind, and only a correctly signed, valid token is accepted.
//! 10 000 cases per property unless `PROPTEST_CASES` says otherwise.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::testing::MockProvider;
use oidc_auth::{ErrorKind, NoPolicy, OidcAuth};
use oidc_auth_tests::{AUDIENCE, base_config};
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
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

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn authorize(header: &[u8]) -> Result<(), ErrorKind> {
    let f = fixture();
    f.runtime
        .block_on(f.auth.authorize::<NoPolicy>([header]))
        .map(|_| ())
        .map_err(|e| e.kind())
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
    #![proptest_config(config())]

    /// Any header value: rejected as missing (401), malformed (400) or invalid (401).
    #[test]
    fn arbitrary_authorization_headers_are_refused_cleanly(header in prop::collection::vec(any::<u8>(), 0..512)) {
        let result = authorize(&header);
        prop_assert!(matches!(result, Err(ErrorKind::MissingToken | ErrorKind::InvalidRequest | ErrorKind::InvalidToken)), "{result:?}");
    }

    /// Bearer tokens made of JWS-like characters: never accepted.
    #[test]
    fn arbitrary_bearer_tokens_are_invalid(token in "[A-Za-z0-9_.=+/-]{1,600}") {
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
            if !["iss", "sub", "aud", "exp", "nbf", "iat"].contains(&name.as_str()) {
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
}
