//! SECURITY.md G1. With tracing at TRACE for every crate, a whole login (code flow, refresh,
//! device flow, userinfo) leaves no secret in any log line: not the PKCE verifier, the sealed
//! state handle, the code, the tokens, the refresh token or the client secret. The same holds in
//! broker mode for minted tokens, rotating refresh tokens (also when reused), the provider
//! refresh token kept server-side, the encryption key, token-exchange credentials and revocation.

use std::io::Write;
use std::sync::{Arc, Mutex};

use oidc_auth::testing::MockProvider;
use oidc_auth_tests::{AUDIENCE, Framework, Harness, into_reply, last_token_request_field};
use tracing_subscriber::fmt::MakeWriter;
use url::Url;

const LOOPBACK: &str = "http://localhost:53100/callback";
const SECRET: &str = "client-secret-that-must-not-leak";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let log = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(log.clone())
        .with_ansi(false)
        .init();
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_client("test-client", Some(SECRET));
    idp.set_device_interval(Some(0));
    let h = Harness::with(
        idp,
        |b| b.client_id("test-client").client_secret(SECRET),
        None,
    )
    .await;
    let mut secrets = vec![SECRET.to_owned()];
    for fw in [Framework::Axum, Framework::Actix] {
        let login = format!(
            "/api/auth/v2/login?redirect_uri={}",
            "http%3A%2F%2Flocalhost%3A53100%2Fcallback"
        );
        let authorize = location(&h, &h.url(fw, &login)).await;
        let back = location(&h, authorize.as_str()).await;
        let state = query(&back, "state");
        let handle = state.rsplit('|').next().unwrap_or_default().to_owned();
        let code = query(&back, "code");
        let form = [
            ("code", code.as_str()),
            ("redirect_uri", LOOPBACK),
            ("code_verifier", handle.as_str()),
        ];
        let tokens = into_reply(
            h.client()
                .post(h.url(fw, "/api/auth/v2/token"))
                .form(&form)
                .send()
                .await
                .expect("token"),
        )
        .await;
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
        assert_eq!(
            h.bearer(
                fw,
                "/me",
                "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
            )
            .await
            .status,
            401
        );
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
    // provider refresh token kept server-side, the encryption key and token exchange.
    let encryption_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let idp = oidc_auth_tests::broker::provider().await;
    idp.set_client("test-client", Some(SECRET));
    let b = oidc_auth_tests::broker::serve_broker(
        idp,
        Arc::new(oidc_auth::store::memory::MemoryStore::new()),
        |c| c.client_secret(SECRET).encryption_key(encryption_key),
        None,
    )
    .await;
    secrets.push(encryption_key.to_owned());
    for fw in [Framework::Axum, Framework::Actix] {
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
    let text =
        String::from_utf8_lossy(&log.0.lock().map(|l| l.clone()).unwrap_or_default()).into_owned();
    assert!(
        text.lines().count() > 20,
        "tracing captured the run ({} lines)",
        text.lines().count()
    );
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        // The middle of a secret is enough to find it, whatever encoding surrounds it.
        let probe = &secret[secret.len() / 4..secret.len() / 4 + 8.min(secret.len() / 2)];
        let probe = if secret.len() >= 24 {
            &secret[4..24]
        } else {
            probe
        };
        assert!(!text.contains(probe), "a secret reached the logs: {probe}");
    }
}
