//! The demo's routes in-process, without a network: what a request costs the server in the
//! framework and the library, with the loopback TCP that dominates `scripts/load-bench.sh` taken
//! out. The load benchmark's `/me` to `/public` ratio is these figures plus the same network
//! cost on both sides.
//!
//! Benchmarks (criterion ids), for `axum` and `actix` (actix-web's test service):
//!
//! - `<framework>/public`: `GET /public`, no `Authorization` header.
//! - `<framework>/public_same_header`: `GET /public` with the bearer header of the next one,
//!   which the route ignores: the cost of a larger request alone.
//! - `<framework>/me_cached`: `GET /me` with one valid token on every request (the
//!   validated-token cache's hit path, the extractor and the handler).
//! - `<framework>/me_uncached`: `GET /me` against a handle with the cache disabled, so every
//!   request verifies the RS256 signature.
//!
//! The token is the one `loadgen` sends (RS256, the demo audience, `openid profile`, one group).
//!
//! ```text
//! cargo bench -p oidc-auth-examples --bench routes
//! ```

use std::hint::black_box;

use actix_web::{App, test};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use oidc_auth::testing::MockProvider;
use oidc_auth::{OidcAuth, OidcConfig};
use oidc_auth_examples::{DEMO_AUDIENCE, actix_demo, axum_demo};
use tower::ServiceExt as _;

/// The demo's handle on `provider`, with the default token cache or none.
async fn demo_auth(provider: &MockProvider, cache: bool) -> OidcAuth {
    let mut config = OidcConfig::builder()
        .discovery_url(provider.discovery_url())
        .client_id(DEMO_AUDIENCE)
        .audience(DEMO_AUDIENCE);
    if !cache {
        config = config.token_cache_capacity(0);
    }
    let auth = OidcAuth::new(config.build().expect("a valid configuration"));
    auth.warm_up().await.expect("the mock provider answers");
    auth
}

fn routes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (provider, token, cached, uncached) = rt.block_on(async {
        let provider = MockProvider::start().await.expect("a loopback port");
        let token = provider
            .token()
            .audience(DEMO_AUDIENCE)
            .sub("alice")
            .scope("openid profile")
            .claim("groups", serde_json::json!(["staff"]))
            .expires_in(3600)
            .sign();
        let cached = demo_auth(&provider, true).await;
        let uncached = demo_auth(&provider, false).await;
        (provider, token, cached, uncached)
    });
    let bearer = Some(format!("Bearer {token}"));
    // (id, path, Authorization header, whether the handle has no cache)
    let scenarios = [
        ("public", "/public", None, false),
        ("public_same_header", "/public", bearer.clone(), false),
        ("me_cached", "/me", bearer.clone(), false),
        ("me_uncached", "/me", bearer, true),
    ];

    let mut axum_group = c.benchmark_group("axum");
    let with_cache = axum_demo::router(cached.clone());
    let without_cache = axum_demo::router(uncached.clone());
    for (name, path, header, no_cache) in &scenarios {
        let router = if *no_cache {
            &without_cache
        } else {
            &with_cache
        };
        let request = || {
            let mut builder = Request::get(*path);
            if let Some(value) = header {
                builder = builder.header("authorization", value);
            }
            builder.body(Body::empty()).expect("a valid request")
        };
        let status = rt
            .block_on(router.clone().oneshot(request()))
            .map(|r| r.status());
        assert_eq!(status.ok(), Some(StatusCode::OK), "{name}");
        axum_group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(router.clone().oneshot(black_box(request()))))
        });
    }
    axum_group.finish();

    let actix = actix_web::rt::System::new();
    let mut actix_group = c.benchmark_group("actix");
    let with_cache = actix.block_on(test::init_service(
        App::new().configure(actix_demo::configure(cached)),
    ));
    let without_cache = actix.block_on(test::init_service(
        App::new().configure(actix_demo::configure(uncached)),
    ));
    for (name, path, header, no_cache) in &scenarios {
        let service = if *no_cache {
            &without_cache
        } else {
            &with_cache
        };
        let request = || {
            let mut builder = test::TestRequest::get().uri(path);
            if let Some(value) = header {
                builder = builder.insert_header(("authorization", value.as_str()));
            }
            builder.to_request()
        };
        let status = actix
            .block_on(test::call_service(service, request()))
            .status();
        assert_eq!(status.as_u16(), 200, "{name}");
        actix_group.bench_function(*name, |b| {
            b.iter(|| actix.block_on(test::call_service(service, black_box(request()))))
        });
    }
    actix_group.finish();
    drop(provider);
}

criterion_group!(benches, routes);
criterion_main!(benches);
