//! This crate's auth endpoints, on axum and actix-web, against the real provider
//! (`oidc-provider` on 127.0.0.1): login through our `/login`, the provider's sign-in pages,
//! then our `/token` or `/callback`; refresh; the device flow approved and denied; userinfo;
//! logout; key rotation at the provider picked up by validation.

use std::time::Duration;

use oidc_auth::OidcAuth;
use oidc_auth::testing::MockProvider;
use oidc_auth_tests::real_provider::{ALL_SCOPES, API_AUDIENCE, Client, RealProvider};
use oidc_auth_tests::{FRAMEWORKS, Framework, Harness, Reply, base_config, query_param};
use serde_json::Value;
use url::Url;

const LOOPBACK: &str = "http://localhost:53100/callback";
const LOGGED_OUT: &str = "http://localhost:53100/logged-out";

/// Our servers configured for the real provider's confidential client. (The harness also holds
/// a mock provider, unused here.)
async fn servers(p: &RealProvider) -> Harness {
    let unused = MockProvider::start().await.expect("mock");
    let config = base_config(&unused)
        .discovery_url(p.discovery_url())
        .client_id(Client::Confidential.id())
        .client_secret(Client::Confidential.secret().unwrap_or_default())
        .audience(API_AUDIENCE)
        .scopes(ALL_SCOPES)
        .logout_redirect_uris([LOGGED_OUT.to_owned()])
        .build()
        .expect("config");
    Harness::serve(unused, OidcAuth::new(config), None).await
}

/// Our `/login` -> the provider's sign-in and consent -> the redirect back, not followed.
async fn sign_in(p: &RealProvider, h: &Harness, fw: Framework, redirect_uri: &str) -> Url {
    let login = oidc_auth_tests::client_login_path(redirect_uri);
    let response = h
        .client()
        .get(h.url(fw, &login))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 302);
    let authorize = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(authorize.starts_with(p.issuer()), "{authorize}");
    p.login(&authorize).await.location().clone()
}

async fn token_via_state(h: &Harness, fw: Framework, back: &Url) -> Reply {
    let state = query_param(back, "state").unwrap_or_default();
    h.post_form(
        fw,
        "/api/auth/v2/token",
        &[
            ("code", &query_param(back, "code").unwrap_or_default()),
            ("redirect_uri", LOOPBACK),
            ("grant_type", "authorization_code"),
            (
                "code_verifier",
                state.rsplit('|').next().unwrap_or_default(),
            ),
        ],
    )
    .await
}

fn access(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    reply.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_code_flow_refresh_and_userinfo_through_our_endpoints() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    for fw in FRAMEWORKS {
        let back = sign_in(&p, &h, fw, LOOPBACK).await;
        assert!(back.as_str().starts_with(LOOPBACK), "{back}");
        let tokens = token_via_state(&h, fw, &back).await;
        let token = access(&tokens);
        assert_eq!(h.bearer_both("/me", &token).await.status, 200);
        assert_eq!(
            h.bearer_both("/admin", &token).await.status,
            200,
            "scope admin and group admins"
        );
        let refreshed = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[(
                    "refresh-token",
                    tokens.body["refresh_token"].as_str().unwrap_or_default(),
                )],
            )
            .await;
        assert_eq!(h.bearer_both("/me", &access(&refreshed)).await.status, 200);
        let user = h.bearer(fw, "/api/auth/v2/userinfo", &token).await;
        assert_eq!(user.status, 200, "{}", user.raw_body);
        assert_eq!(user.body["username"], "alice");
        assert_eq!(user.body["last_name"], "van der Berg");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_callback_completes_the_login() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    for fw in FRAMEWORKS {
        let callback = h.url(fw, "/api/auth/v2/callback");
        let back = sign_in(&p, &h, fw, &callback).await;
        assert!(back.as_str().starts_with(&callback));
        let reply = h.get_url(&back).await;
        assert_eq!(h.bearer_both("/me", &access(&reply)).await.status, 200);
    }
}

/// Polls our token endpoint with the client's `device-code` field until the provider decides,
/// honouring `slow_down`; bounded to a minute.
async fn poll(h: &Harness, fw: Framework, device_code: &str, interval: u64) -> Reply {
    let mut wait = interval.max(1);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let reply = h
            .post_form(fw, "/api/auth/v2/token", &[("device-code", device_code)])
            .await;
        match reply.error() {
            Some("authorization_pending") => {}
            Some("slow_down") => wait += 1,
            _ => return reply,
        }
    }
    panic!("the device flow did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approved_and_denied_through_our_endpoints() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    for (fw, approve) in [(Framework::Axum, true), (Framework::Actix, false)] {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let device_code = start.body["device_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let user_code = start.body["user_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let interval = start.body["interval"].as_u64().unwrap_or(5);
        let pending = h
            .post_form(fw, "/api/auth/v2/token", &[("device-code", &device_code)])
            .await;
        assert!(
            matches!(pending.error(), Some("authorization_pending" | "slow_down")),
            "{}",
            pending.raw_body
        );
        if approve {
            p.approve_device(&user_code).await;
            let reply = poll(&h, fw, &device_code, interval).await;
            assert_eq!(h.bearer_both("/me", &access(&reply)).await.status, 200);
        } else {
            p.deny_device(&user_code).await;
            let reply = poll(&h, fw, &device_code, interval).await;
            assert_eq!((reply.status, reply.error()), (400, Some("access_denied")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_redirects_to_the_providers_end_session_endpoint() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    for fw in FRAMEWORKS {
        let path = format!(
            "/api/auth/v2/logout?{}",
            serde_urlencoded::to_string([("post_logout_redirect_uri", LOGGED_OUT)])
                .unwrap_or_default()
        );
        let response = h
            .client()
            .get(h.url(fw, &path))
            .send()
            .await
            .expect("logout");
        assert_eq!(response.status().as_u16(), 302);
        let location = Url::parse(
            response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        )
        .expect("url");
        assert!(location.as_str().starts_with(&p.endpoints().end_session));
        assert_eq!(
            query_param(&location, "post_logout_redirect_uri").as_deref(),
            Some(LOGGED_OUT)
        );
        let page = p
            .http()
            .get(location.as_str())
            .send()
            .await
            .expect("the provider answers");
        assert!(page.status().is_success() || page.status().is_redirection());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_provider_is_picked_up() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    let back = sign_in(&p, &h, Framework::Axum, LOOPBACK).await;
    let tokens = token_via_state(&h, Framework::Axum, &back).await;
    assert_eq!(h.bearer_both("/me", &access(&tokens)).await.status, 200);
    let rotated = p.rotate_keys().await;
    let refreshed = h
        .post_form(
            Framework::Actix,
            "/api/auth/v2/token",
            &[(
                "refresh-token",
                tokens.body["refresh_token"].as_str().unwrap_or_default(),
            )],
        )
        .await;
    let new_token = access(&refreshed);
    let header: Value = oidc_auth_tests::real_provider::jwt_header(&new_token);
    assert_eq!(header["kid"].as_str(), Some(rotated.kid.as_str()));
    assert_eq!(h.bearer_both("/me", &new_token).await.status, 200);
}

/// The demo, configured through `OIDC_*` variables for the real provider, answers as the README
/// says: `/me` 401 without a token and 200 with one, `/admin` 403 without the admin group and
/// scope and 200 with them, `/feed` 200 either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_configured_from_the_environment_protects_its_routes() {
    use oidc_auth_tests::real_provider::{Pkce, random_token};
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let discovery = p.discovery_url();
    let demo = oidc_auth_examples::demo_auth_from(|name| match name {
        "OIDC_DISCOVERY_URL" => Some(discovery.clone()),
        "OIDC_CLIENT_ID" => Some(Client::Public.id().to_owned()),
        "OIDC_AUDIENCE" => Some(API_AUDIENCE.to_owned()),
        _ => None,
    })
    .await
    .expect("the demo configures");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, oidc_auth_examples::axum_demo::router(demo.auth)).await
    });
    let mut tokens = Vec::new();
    for scope in ["openid profile email groups admin", "openid profile"] {
        let pkce = Pkce::new();
        let back = p
            .login(&p.authorize_url(Client::Public, LOOPBACK, scope, &random_token(8), &pkce))
            .await;
        let code = back.code();
        let (status, body) = p
            .token(
                Client::Public,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", LOOPBACK),
                    ("code_verifier", &pkce.verifier),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap_or_default().to_owned());
    }
    let client = reqwest::Client::new();
    let status = |path: &'static str, token: Option<String>| {
        let request = client.get(format!("{base}{path}"));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let (admin, plain) = (tokens[0].clone(), tokens[1].clone());
    assert_eq!(status("/me", None).await, 401);
    assert_eq!(status("/me", Some(plain.clone())).await, 200);
    assert_eq!(status("/admin", Some(plain.clone())).await, 403);
    assert_eq!(status("/admin", Some(admin)).await, 200);
    assert_eq!(status("/feed", None).await, 200);
    assert_eq!(status("/feed", Some(plain)).await, 200);
}

/// Revocation (RFC 7009) through our endpoint against the real provider: the provider's refresh
/// token the client holds is revoked at the provider with our confidential client's
/// authentication, on both frameworks, and then no longer refreshes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_providers_revocation_endpoint() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let h = servers(&p).await;
    for fw in FRAMEWORKS {
        let back = sign_in(&p, &h, fw, LOOPBACK).await;
        let tokens = token_via_state(&h, fw, &back).await;
        let _ = access(&tokens);
        let refresh_token = tokens.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!refresh_token.is_empty(), "{}", tokens.raw_body);
        let form = [
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ];
        let revoked = h.post_form(fw, "/api/auth/v2/revoke", &form).await;
        assert_eq!(revoked.status, 200, "{fw:?}: {}", revoked.raw_body);
        let refreshed = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[("refresh-token", refresh_token.as_str())],
            )
            .await;
        assert_eq!(
            (refreshed.status, refreshed.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            refreshed.raw_body
        );
    }
}
