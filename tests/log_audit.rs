//! SECURITY.md G1. With tracing at TRACE for every crate, a whole login (code flow, refresh,
//! device flow, userinfo) leaves no secret in any log line: not the PKCE verifier, the sealed
//! state handle, the code, the tokens, the refresh token or the client secret. The same holds in
//! broker mode for minted tokens, rotating refresh tokens (also when reused), the provider
//! refresh token kept server-side, the encryption key, token-exchange credentials and revocation,
//! and on failure paths: a forged state handle, a failing provider, a refused ID token and
//! refused bearer tokens.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;

use oidc_auth::testing::{Endpoint, Fault, MockProvider};
use oidc_auth_tests::broker::{
    exchange_as, exchange_form, provider as broker_provider, serve_broker,
};
use oidc_auth_tests::logs::CapturedLogs;
use oidc_auth_tests::{AUDIENCE, Framework, Harness, Reply, into_reply, last_token_request_field};
use url::Url;

const LOOPBACK: &str = "http://localhost:53100/callback";
const SECRET: &str = "client-secret-that-must-not-leak";
/// The state key of the first harness: it seals every login handle.
const STATE_KEY: &str = "c3RhdGUta2V5LW9mLXRoZS1sb2ctYXVkaXQtMDEyMzQ=";
/// A bearer token with a made-up signature.
const FORGED_BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

fn query(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn location(h: &Harness, url: &str) -> Url {
    let response = h.client().get(url).send().await.expect("answer");
    Url::parse(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    )
    .expect("url")
}

/// A login on `fw` up to the client's callback: its code and state handle.
async fn fresh_login(h: &Harness, fw: Framework) -> (String, String) {
    let login = format!(
        "/api/auth/v2/login?redirect_uri={}",
        "http%3A%2F%2Flocalhost%3A53100%2Fcallback"
    );
    let authorize = location(h, &h.url(fw, &login)).await;
    let back = location(h, authorize.as_str()).await;
    let state = query(&back, "state");
    let handle = state.rsplit('|').next().unwrap_or_default().to_owned();
    (query(&back, "code"), handle)
}

/// The client's token call with `code` and the state `handle`.
async fn token_call(h: &Harness, fw: Framework, code: &str, handle: &str) -> Reply {
    let form = [
        ("code", code),
        ("redirect_uri", LOOPBACK),
        ("code_verifier", handle),
    ];
    into_reply(
        h.client()
            .post(h.url(fw, "/api/auth/v2/token"))
            .form(&form)
            .send()
            .await
            .expect("token"),
    )
    .await
}

/// What every test of this binary logs, at TRACE: one global subscriber, since the servers
/// under test log from their own threads.
fn global_log() -> &'static CapturedLogs {
    static LOG: OnceLock<CapturedLogs> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLogs::default();
        log.builder(tracing::Level::TRACE).init();
        log
    })
}

/// G1: the flows run with tracing at TRACE (the login, the code exchange, refresh, revocation,
/// userinfo, the device flow, refused requests, and broker mode on the memory store and on
/// every SQL store configured), and no secret they handled is in any log line: not the client
/// secret, the state key, the encryption key, a code, verifier, handle, access, refresh or
/// device token, nor an exchange client's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let log = global_log();
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_client("test-client", Some(SECRET));
    idp.set_device_interval(Some(0));
    let h = Harness::with(
        idp,
        |b| {
            b.client_id("test-client")
                .client_secret(SECRET)
                .state_key(STATE_KEY)
        },
        None,
    )
    .await;
    let mut secrets = vec![SECRET.to_owned(), STATE_KEY.to_owned()];
    for fw in [Framework::Axum, Framework::Actix] {
        let (code, handle) = fresh_login(&h, fw).await;
        let tokens = token_call(&h, fw, &code, &handle).await;
        assert_eq!(tokens.status, 200, "{}", tokens.raw_body);
        let access = tokens.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refresh = tokens.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let verifier = last_token_request_field(&h.idp, "code_verifier");
        let refreshed = into_reply(
            h.client()
                .post(h.url(fw, "/api/auth/v2/token"))
                .form(&[("refresh-token", refresh.as_str())])
                .send()
                .await
                .expect("refresh"),
        )
        .await;
        assert_eq!(refreshed.status, 200);
        // Revocation at the provider of the rotated refresh token.
        let rotated = refreshed.body["refresh_token"].as_str().unwrap_or_default();
        let revoke = [("token", rotated), ("token_type_hint", "refresh_token")];
        let revoked = h.post_form(fw, "/api/auth/v2/revoke", &revoke).await;
        assert_eq!(revoked.status, 200, "{}", revoked.raw_body);
        assert_eq!(
            h.bearer(fw, "/api/auth/v2/userinfo", &access).await.status,
            200
        );
        assert_eq!(h.bearer(fw, "/me", FORGED_BEARER).await.status, 401);
        let start = into_reply(
            h.client()
                .post(h.url(fw, "/api/auth/v2/device"))
                .send()
                .await
                .expect("device"),
        )
        .await;
        let device_code = start.body["device_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        h.idp
            .approve_device(start.body["user_code"].as_str().unwrap_or_default());
        let device = into_reply(
            h.client()
                .post(h.url(fw, "/api/auth/v2/token"))
                .form(&[("device-code", device_code.as_str())])
                .send()
                .await
                .expect("poll"),
        )
        .await;
        assert_eq!(device.status, 200, "{}", device.raw_body);
        secrets.extend([verifier, handle, code, access, refresh, device_code]);

        // Failure paths: a forged handle, the provider's token endpoint failing, an ID token
        // the server refuses, an expired and a forged bearer token. Neither the log nor the
        // error bodies hold any of their secrets.
        let (code, handle) = fresh_login(&h, fw).await;
        let last = if handle.ends_with('A') { "B" } else { "A" };
        let forged = format!("{}{last}", &handle[..handle.len() - 1]);
        let refused_handle = token_call(&h, fw, &code, &forged).await;
        assert_eq!(refused_handle.status, 400, "{}", refused_handle.raw_body);
        h.idp.set_fault(Endpoint::Token, Fault::Status(500));
        let provider_failed = token_call(&h, fw, &code, &handle).await;
        assert!(
            matches!(provider_failed.status, 502 | 503),
            "{}",
            provider_failed.raw_body
        );
        h.idp.set_fault(Endpoint::Token, Fault::None);
        h.idp
            .set_id_token_tweak(Some(Arc::new(|claims: &mut serde_json::Map<_, _>| {
                claims.insert("nonce".into(), "another-login".into());
            })));
        let (other_code, other_handle) = fresh_login(&h, fw).await;
        let refused_id_token = token_call(&h, fw, &other_code, &other_handle).await;
        assert_eq!(
            refused_id_token.status, 400,
            "{}",
            refused_id_token.raw_body
        );
        h.idp.set_id_token_tweak(None);
        let expired = h.idp.token().audience(AUDIENCE).expires_in(-3600).sign();
        let refused_expired = h.bearer(fw, "/me", &expired).await;
        assert_eq!(refused_expired.status, 401);
        let failures = [code, handle, forged, other_code, other_handle, expired];
        for body in [
            &refused_handle.raw_body,
            &provider_failed.raw_body,
            &refused_id_token.raw_body,
            &refused_expired.raw_body,
        ] {
            for secret in &failures {
                assert!(
                    !body.contains(secret.as_str()),
                    "a secret in an error body: {body}"
                );
            }
        }
        secrets.extend(failures);
        secrets.push(FORGED_BEARER.to_owned());
        for field in ["access_token", "refresh_token"] {
            secrets.push(
                refreshed.body[field]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            secrets.push(device.body[field].as_str().unwrap_or_default().to_owned());
        }
    }
    // Broker mode (SECURITY.md G1 for E and F): minted tokens, the rotating refresh token, the
    // provider refresh token kept server-side, the encryption key and token exchange; on the
    // memory store and on every SQL store there is (the drivers log their statements).
    let encryption_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    secrets.push(encryption_key.to_owned());
    let backends = oidc_auth_tests::broker::sql_backends(true);
    let mut stores: Vec<Arc<dyn oidc_auth::store::Store>> =
        vec![Arc::new(oidc_auth::store::memory::MemoryStore::new())];
    for backend in &backends {
        let store = oidc_auth::store::connect(&backend.url).await;
        stores.push(store.unwrap_or_else(|e| panic!("{}: {e}", backend.name)));
    }
    for (store, fw) in stores
        .into_iter()
        .flat_map(|store| [Framework::Axum, Framework::Actix].map(|fw| (store.clone(), fw)))
    {
        let idp = oidc_auth_tests::broker::provider().await;
        idp.set_client("test-client", Some(SECRET));
        let b = oidc_auth_tests::broker::serve_broker(
            idp,
            store,
            |c| c.client_secret(SECRET).encryption_key(encryption_key),
            None,
        )
        .await;
        let tokens = oidc_auth_tests::broker::login(&b, fw).await;
        let field = |name: &str| tokens.body[name].as_str().unwrap_or_default().to_owned();
        let (access, refresh) = (field("access_token"), field("refresh_token"));
        let refreshed = oidc_auth_tests::broker::refresh(&b, fw, &refresh).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.raw_body);
        let provider_refresh = last_token_request_field(&b.idp, "refresh_token");
        let reused = oidc_auth_tests::broker::refresh(&b, fw, &refresh).await;
        assert_eq!(reused.error(), Some("invalid_grant"));
        let form = oidc_auth_tests::broker::exchange_form(&access, &[]);
        let exchanged =
            oidc_auth_tests::broker::exchange_as(&b, fw, &form, Some("svc-secret")).await;
        assert_eq!(exchanged.status, 200, "{}", exchanged.raw_body);
        let wrong_client =
            oidc_auth_tests::broker::exchange_as(&b, fw, &form, Some("guessed-exchange-secret"))
                .await;
        assert_eq!(wrong_client.status, 401);
        // Revocation of a live token (the refreshed one) and of an access token (refused).
        let live = refreshed.body["refresh_token"].as_str().unwrap_or_default();
        let revoke = oidc_auth_tests::broker::REVOKE;
        let revoked = b.post_form(fw, revoke, &[("token", live)]).await;
        assert_eq!(revoked.status, 200);
        let refused = b.post_form(fw, revoke, &[("token", &access)]).await;
        assert_eq!(refused.error(), Some("unsupported_token_type"));
        for body in [&reused.raw_body, &wrong_client.raw_body, &refused.raw_body] {
            for secret in [&access, &refresh, &provider_refresh] {
                assert!(!body.contains(secret.as_str()), "a secret in an error body");
            }
        }
        secrets.extend([
            access,
            refresh,
            provider_refresh,
            "svc-secret".to_owned(),
            "guessed-exchange-secret".to_owned(),
            exchanged.body["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ]);
        for field in ["access_token", "refresh_token"] {
            secrets.push(
                refreshed.body[field]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let text = log.text();
    assert!(
        text.lines().count() > 20,
        "tracing captured the run ({} lines)",
        text.lines().count()
    );
    // The client secret as HTTP Basic sends it, should a request's headers be logged.
    secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("test-client:{SECRET}")));
    assert!(
        text.contains("TRACE") && text.contains("DEBUG"),
        "tracing captured every level"
    );
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        for probe in probes(secret) {
            assert!(!text.contains(probe), "a secret reached the logs: {probe}");
        }
    }
}

/// Pieces of `secret` to look for in the logs: every 16 characters, whichever part of it a line
/// would hold (a JWT's header is alike for all tokens of a key; its claims and signature are
/// not), or the whole of a shorter one.
fn probes(secret: &str) -> Vec<&str> {
    const WINDOW: usize = 16;
    if secret.len() <= WINDOW {
        return vec![secret];
    }
    (0..=secret.len() - WINDOW)
        .step_by(WINDOW / 2)
        .filter_map(|start| secret.get(start..start + WINDOW))
        .collect()
}

/// G1, `Debug` of the public types that hold secrets or personal data: a broker session (the
/// sealed provider refresh token, the cached profile), a stored signing key (its private key),
/// an endpoint answer (tokens in a Token JSON, the code and state of a callback redirect), a
/// validated token (its claims beyond `sub`, `iss` and `exp`) and [`oidc_auth::Secret`].
#[test]
fn debug_of_secret_bearing_types_is_redacted() {
    use oidc_auth::store::{Session, StoredKey};
    use oidc_auth::{EndpointResponse, IdToken, Secret};

    let session = Session {
        id: "sid-1".into(),
        subject: "alice".into(),
        provider_refresh_token: "pr0vider-refresh".into(),
        userinfo: r#"{"email":"alice@secret.example"}"#.into(),
        expires_at: 9,
    };
    let key = StoredKey {
        kid: "k1".into(),
        alg: "RS256".into(),
        private_key: b"PR1VATE-KEY-BYTES".to_vec(),
        public_jwk: "{}".into(),
        published_at: 0,
        active_from: 0,
        retire_at: 1,
        remove_at: 2,
    };
    let answer = EndpointResponse::Json {
        status: 200,
        body: serde_json::json!({"access_token": "acc3ss-token", "refresh_token": "r3fresh"}),
    };
    let callback = EndpointResponse::Redirect {
        location: "http://localhost:53100/callback?code=c0de-value&state=x%7Ch4ndle".into(),
    };
    let token = IdToken::from_claims(serde_json::json!({
        "sub": "alice", "iss": "https://idp.example", "exp": 10,
        "email": "alice@secret.example", "nonce": "n0nce-value",
    }))
    .expect("claims");
    let secret = Secret::new("hunter2");
    let shown = format!("{session:?} {key:?} {answer:?} {callback:?} {token:?} {secret:?}");
    for leak in [
        "pr0vider-refresh",
        "alice@secret.example",
        "PR1VATE",
        "80, 82, 49",
        "acc3ss-token",
        "r3fresh",
        "c0de-value",
        "h4ndle",
        "n0nce-value",
        "hunter2",
    ] {
        assert!(!shown.contains(leak), "{leak} in {shown}");
    }
    // What is shown is what identifies the value.
    for kept in [
        "sid-1",
        "k1",
        "access_token",
        "http://localhost:53100/callback",
        "alice",
    ] {
        assert!(shown.contains(kept), "{kept} missing from {shown}");
    }
}

/// SECURITY A6 for the log: a caller's text that is logged (a token-exchange `client_id` that
/// failed to authenticate, a `scope` wider than the subject token's) cannot start a line of its
/// own with a CR or LF, and is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_text_cannot_forge_log_lines() {
    let log = global_log();
    let store = Arc::new(oidc_auth::store::memory::MemoryStore::new());
    let h = serve_broker(broker_provider().await, store, |c| c, None).await;
    let padding = "p".repeat(10_000);
    let client = format!("svc\r\nERROR forged client line {padding}");
    let scope = "openid\nERROR forged scope line";
    let subject = h.idp.token().audience(AUDIENCE).scope("openid").sign();
    for fw in [Framework::Axum, Framework::Actix] {
        let refused = exchange_as(
            &h,
            fw,
            &exchange_form(&subject, &[("client_id", &client), ("client_secret", "x")]),
            None,
        )
        .await;
        assert_eq!(refused.status, 401, "{}", refused.raw_body);
        let wider = exchange_as(
            &h,
            fw,
            &exchange_form(&subject, &[("scope", scope)]),
            Some("svc-secret"),
        )
        .await;
        assert_eq!(wider.error(), Some("invalid_scope"), "{}", wider.raw_body);
    }
    let text = log.text();
    assert!(text.contains("token exchange refused: client authentication failed"));
    assert!(text.contains("token exchange refused: scope wider"));
    for line in text.lines() {
        let start: String = line.chars().take(120).collect();
        assert!(!line.trim_start().starts_with("ERROR forged"), "{start}");
        assert!(
            !line.contains(&padding),
            "caller text not cut short: {start}"
        );
    }
}
