//! Bearer-token validation throughput: [`OidcAuth::validate`] against plain
//! `jsonwebtoken::decode`, for RS256, ES256 and `EdDSA`, in the same run.
//!
//! Benchmarks (criterion ids), one per algorithm:
//!
//! - `raw_jsonwebtoken/<alg>`: the baseline. `jsonwebtoken::decode::<serde_json::Value>` with a
//!   `DecodingKey` built once from the JWK the mock provider publishes, and a `Validation` with
//!   the same algorithm, issuer, audience, required claims and leeway as ours.
//! - `oidc_auth_uncached/<alg>`: `OidcAuth::validate` with the token cache disabled
//!   (`token_cache_capacity(0)`), so every call parses the token, checks the claims and verifies
//!   the signature. The JWKS is loaded beforehand with `warm_up`, so no call touches the network.
//! - `oidc_auth_cached/<alg>`: `OidcAuth::validate` with the default cache and the same token
//!   every time: the hit path (SHA-256 of the token and a cache lookup).
//! - `runtime/block_on_ready`: `block_on` of an already-ready future on the same current-thread
//!   runtime, the fixed cost included in every `oidc_auth_*` figure but not in the baseline.
//!
//! The tokens are shaped like Keycloak access tokens: about 1.2 KB with RS256, 0.9 KB with
//! ES256 and `EdDSA`. Every benchmark reports elements (validations) per second. For each
//! algorithm the baseline and ours run back to back; on a shared or virtualised machine compare
//! them within one run, and expect run-to-run differences of 10-20%.
//!
//! ```text
//! cargo bench -p oidc-auth --features testing --bench validation
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oidc_auth::testing::{MockProvider, SigningAlg};
use oidc_auth::{OidcAuth, OidcConfig};
use serde_json::{Value, json};

/// The audience of the benchmark tokens, and the one both validators require.
const AUDIENCE: &str = "bench";

/// Clock leeway in seconds, the same for both validators (our default).
const LEEWAY_SECS: u64 = 60;

/// The algorithms measured.
const ALGORITHMS: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

/// Everything needed to validate one algorithm's token both ways.
struct Fixture {
    alg: SigningAlg,
    /// Kept alive for the whole run; its server is only needed while warming up.
    _provider: MockProvider,
    token: String,
    decoding_key: DecodingKey,
    validation: Validation,
    uncached: OidcAuth,
    cached: OidcAuth,
}

impl Fixture {
    /// Starts a provider with one `alg` key, mints a token, builds both validators, warms up our
    /// JWKS and checks that both sides accept the token, so no error path is measured.
    async fn new(alg: SigningAlg) -> Self {
        let provider = MockProvider::start_with_alg(alg)
            .await
            .expect("the mock provider could not bind a loopback port");
        let token = keycloak_like_token(&provider);

        let decoding_key = published_decoding_key(&provider).await;
        let validation = baseline_validation(alg, &provider.issuer());

        let uncached = oidc_auth(&provider, true);
        let cached = oidc_auth(&provider, false);
        for auth in [&uncached, &cached] {
            auth.warm_up().await.expect("warm-up failed");
            auth.validate(&token)
                .await
                .expect("OidcAuth refused the benchmark token");
        }
        jsonwebtoken::decode::<Value>(&token, &decoding_key, &validation)
            .expect("jsonwebtoken refused the benchmark token");

        Self {
            alg,
            _provider: provider,
            token,
            decoding_key,
            validation,
            uncached,
            cached,
        }
    }
}

/// A token with the claims of a typical Keycloak access token, issued to [`AUDIENCE`] and valid
/// for an hour.
fn keycloak_like_token(provider: &MockProvider) -> String {
    provider
        .token()
        .sub("f1b3c4d2-7a8e-4c1f-9b2d-3e5a6c7d8e9f")
        .audience(AUDIENCE)
        .expires_in(3600)
        .scope("openid profile email")
        .claim("jti", json!("0b6f2a5e-4c7d-4e1a-9f3b-2d8c6a1e5f47"))
        .claim("typ", json!("Bearer"))
        .claim("azp", json!("bench-frontend"))
        .claim("sid", json!("5c2e8a1f-3b7d-4f6e-a9c0-d1e2f3a4b5c6"))
        .claim(
            "realm_access",
            json!({"roles": ["offline_access", "default-roles-main", "editor"]}),
        )
        .claim(
            "resource_access",
            json!({"bench": {"roles": ["read", "write"]}}),
        )
        .claim(
            "groups",
            json!(["/staff", "/staff/engineering", "/beta-testers"]),
        )
        .claim("email_verified", json!(true))
        .claim("name", json!("Alice Example"))
        .claim("preferred_username", json!("alice"))
        .claim("email", json!("alice@example.com"))
        .sign()
}

/// The provider's current key as a `jsonwebtoken` key, built from the JWKS it serves.
async fn published_decoding_key(provider: &MockProvider) -> DecodingKey {
    let jwks: JwkSet = reqwest::get(provider.jwks_uri())
        .await
        .expect("the JWKS request failed")
        .json()
        .await
        .expect("the JWKS is not a valid JWK set");
    let jwk = jwks
        .find(&provider.current_kid())
        .expect("the current key is not published");
    DecodingKey::from_jwk(jwk).expect("jsonwebtoken cannot use the published JWK")
}

/// The baseline's checks, matching ours: one algorithm, exact issuer, required audience,
/// `exp`/`iss`/`aud`/`sub` present, same leeway.
fn baseline_validation(alg: SigningAlg, issuer: &str) -> Validation {
    let alg = match alg {
        SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
        SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
        SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => unimplemented!("no baseline for {other}"),
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    validation
}

/// Our validator for `provider`, with the token cache disabled or at its default.
fn oidc_auth(provider: &MockProvider, disable_cache: bool) -> OidcAuth {
    let mut builder = OidcConfig::builder()
        .discovery_url(provider.discovery_url())
        .client_id(AUDIENCE)
        .audience(AUDIENCE)
        .leeway(Duration::from_secs(LEEWAY_SECS));
    if disable_cache {
        builder = builder.token_cache_capacity(0);
    }
    OidcAuth::new(builder.build().expect("invalid benchmark configuration"))
}

/// Registers every benchmark; see the crate documentation for what each one measures.
fn validation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime could not be built");
    // The mock providers' servers are spawned on `rt`; they answer while `block_on` runs, which
    // is all warm-up needs.
    let fixtures: Vec<Fixture> = rt.block_on(async {
        let mut fixtures = Vec::new();
        for alg in ALGORITHMS {
            fixtures.push(Fixture::new(alg).await);
        }
        fixtures
    });
    for f in &fixtures {
        eprintln!("{}: token of {} bytes", f.alg, f.token.len());
    }

    // Per algorithm, the baseline and ours run back to back, so that a change in background load
    // during the run skews their ratio as little as possible.
    for f in &fixtures {
        let alg = f.alg.as_str();
        bench(c, "raw_jsonwebtoken", alg, || {
            jsonwebtoken::decode::<Value>(black_box(&f.token), &f.decoding_key, &f.validation)
        });
        bench(c, "oidc_auth_uncached", alg, || {
            rt.block_on(f.uncached.validate(black_box(&f.token)))
        });
        bench(c, "oidc_auth_cached", alg, || {
            rt.block_on(f.cached.validate(black_box(&f.token)))
        });
    }
    bench(c, "runtime", "block_on_ready", || {
        rt.block_on(async { black_box(0u8) })
    });
}

/// Times `routine` as benchmark `group/id`, counting one element (validation) per call.
fn bench<O>(c: &mut Criterion, group: &str, id: &str, mut routine: impl FnMut() -> O) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    group.bench_function(id, |b| b.iter(&mut routine));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    targets = validation
}
criterion_main!(benches);
