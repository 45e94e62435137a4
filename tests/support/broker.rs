//! Broker-mode helpers shared by the broker test binaries.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::store::Store;
use oidc_auth::testing::MockProvider;
use oidc_auth::{ManualClock, OidcAuth, OidcConfigBuilder};
use serde_json::{Value, json};

use crate::{
    AUDIENCE, Framework, Harness, LOOPBACK, Reply, base_config, browser_login, client_token_call,
};

pub const BROKER_AUDIENCE: &str = "broker-api";
pub const TOKEN: &str = "/api/auth/v2/token";
pub const JWKS: &str = "/api/auth/v2/.well-known/jwks.json";

/// A mock provider set up for broker tests: access tokens for `api`, no device pacing, and a
/// user with groups and roles.
pub async fn provider() -> MockProvider {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_device_interval(Some(0));
    idp.set_user(
        "alice",
        json!({"preferred_username": "alice", "email": "alice@example.com",
               "groups": ["admins"], "realm_access": {"roles": ["editor"]}}),
    );
    idp
}

/// The broker configuration of the tests: broker mode, audience `broker-api`, exchange client
/// `svc` / `svc-secret`.
pub fn broker_config(idp: &MockProvider) -> OidcConfigBuilder {
    base_config(idp)
        .client_id("test-client")
        .broker_mode(true)
        .broker_audience(BROKER_AUDIENCE)
        .exchange_client("svc", "svc-secret")
}

/// Serves a broker on `store` with both frameworks.
pub async fn serve_broker(
    idp: MockProvider,
    store: Arc<dyn Store>,
    adjust: impl FnOnce(OidcConfigBuilder) -> OidcConfigBuilder,
    clock: Option<ManualClock>,
) -> Harness {
    let config = adjust(broker_config(&idp))
        .build()
        .expect("broker configuration");
    let mut builder = OidcAuth::builder(config).store(store);
    if let Some(clock) = &clock {
        builder = builder.clock(clock.clone());
    }
    Harness::serve(idp, builder.build(), clock).await
}

pub fn decode(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Header and claims of a compact JWT.
pub fn jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = decode(parts.next().unwrap_or_default());
    let claims = decode(parts.next().unwrap_or_default());
    (header, claims)
}

pub fn field<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.body[name].as_str().unwrap_or_default()
}

pub async fn login(h: &Harness, fw: Framework) -> Reply {
    let (_, callback) = browser_login(h, fw, LOOPBACK).await;
    let reply = client_token_call(h, fw, &callback).await;
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    reply
}

pub async fn refresh(h: &Harness, fw: Framework, token: &str) -> Reply {
    h.post_form(fw, TOKEN, &[("refresh-token", token)]).await
}

/// A token-exchange form for `subject` (an access token) with `extra` fields.
pub fn exchange_form<'a>(
    subject: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    form.extend_from_slice(extra);
    form
}

/// POSTs a token-exchange `form`, authenticated as the exchange client `svc` with `secret`
/// (HTTP Basic) when one is given.
pub async fn exchange_as(
    h: &Harness,
    fw: Framework,
    form: &[(&str, &str)],
    secret: Option<&str>,
) -> Reply {
    let mut request = h.client().post(h.url(fw, TOKEN)).form(form);
    if let Some(secret) = secret {
        request = request.basic_auth("svc", Some(secret));
    }
    crate::into_reply(request.send().await.expect("answer")).await
}

/// [`exchange_as`] with the right secret when `authenticated`, none otherwise.
pub async fn exchange(
    h: &Harness,
    fw: Framework,
    form: &[(&str, &str)],
    authenticated: bool,
) -> Reply {
    exchange_as(h, fw, form, authenticated.then_some("svc-secret")).await
}
