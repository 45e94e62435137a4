//! The auth endpoints on both frameworks against the mock provider: login, callback, token,
//! device, logout and userinfo, and the SECURITY.md cases D and E that concern them.

use oidc_auth::testing::MockProvider;
use oidc_auth_tests::{FRAMEWORKS, Framework, Harness, Reply, into_reply};
use serde_json::json;
use url::Url;

const LOOPBACK: &str = "http://localhost:53100/callback";

async fn harness_with_allow_lists() -> Harness {
    let idp = MockProvider::start().await.expect("provider");
    Harness::with(
        idp,
        |b| {
            b.login_redirect_uris(["https://app.example.com/api/auth/v2/callback".to_owned()])
                .logout_redirect_uris(["https://app.example.com/bye".to_owned()])
        },
        None,
    )
    .await
}

async fn raw_get(h: &Harness, fw: Framework, path_and_query: &str) -> (u16, Option<Url>, Reply) {
    let response = h
        .client()
        .get(h.url(fw, path_and_query))
        .send()
        .await
        .expect("the server answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Url::parse(v).ok());
    let reply = into_reply(response).await;
    (reply.status, location, reply)
}

fn login_path(redirect_uri: &str) -> String {
    let query = serde_urlencoded::to_string([("redirect_uri", redirect_uri)]).unwrap_or_default();
    format!("/api/auth/v2/login?{query}")
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// D6 and D12: a loopback redirect URI on any port is accepted and sent to the provider as is;
/// the authorization request carries state, nonce and an S256 challenge of 43 characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_redirects_to_the_provider_with_pkce_state_and_nonce() {
    let h = harness_with_allow_lists().await;
    for fw in FRAMEWORKS {
        for redirect in [
            LOOPBACK,
            "http://127.0.0.1:61234/callback",
            "https://app.example.com/api/auth/v2/callback",
        ] {
            let (status, location, _) = raw_get(&h, fw, &login_path(redirect)).await;
            assert_eq!(status, 302, "{fw:?} {redirect}");
            let location = location.expect("a Location header");
            assert!(
                location
                    .as_str()
                    .starts_with(&format!("{}/authorize?", h.idp.issuer()))
            );
            assert_eq!(param(&location, "redirect_uri").as_deref(), Some(redirect));
            assert_eq!(param(&location, "response_type").as_deref(), Some("code"));
            assert_eq!(
                param(&location, "code_challenge_method").as_deref(),
                Some("S256")
            );
            assert_eq!(
                param(&location, "code_challenge").map(|c| c.len()),
                Some(43)
            );
            assert!(param(&location, "nonce").is_some_and(|n| n.len() >= 16));
            let state = param(&location, "state").expect("state");
            let handle = state.rsplit('|').next().unwrap_or_default();
            assert!(
                state.contains('|') && handle.len() > 43,
                "state ends with a sealed handle"
            );
        }
    }
}

/// D11: redirect URIs outside the allow-list are refused before the provider is contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_redirect_uris_outside_the_allow_list() {
    let h = harness_with_allow_lists().await;
    let hostile = [
        "https://evil.example.com/callback",
        "https://app.example.com.evil.com/api/auth/v2/callback",
        "https://app.example.com/api/auth/v2/callback/../../x",
        "https://user@app.example.com/api/auth/v2/callback",
        "http://localhost@evil.com/callback",
        "http://localhost:53100\\@evil.com/",
        "http://localhost%2f@evil.com/",
        "https://app.example.com%2Fapi/auth/v2/callback",
        " http://localhost:53100/callback",
        "http://localhost:53100/call back",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.com",
    ];
    for fw in FRAMEWORKS {
        for redirect in hostile {
            let (status, location, reply) = raw_get(&h, fw, &login_path(redirect)).await;
            assert_eq!(status, 400, "{fw:?} {redirect:?}");
            assert!(location.is_none());
            assert_eq!(reply.error(), Some("invalid_request"));
        }
        let (status, _, _) = raw_get(&h, fw, "/api/auth/v2/login").await;
        assert_eq!(status, 400, "redirect_uri is required");
    }
    assert_eq!(
        h.idp.hits(oidc_auth::testing::Endpoint::Discovery),
        0,
        "the provider was never contacted"
    );
}

/// D13: logout redirects only to an allow-listed URI, compared exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_redirects_only_to_allow_listed_uris() {
    let h = harness_with_allow_lists().await;
    for fw in FRAMEWORKS {
        let ok = format!(
            "/api/auth/v2/logout?{}",
            serde_urlencoded::to_string([(
                "post_logout_redirect_uri",
                "https://app.example.com/bye"
            )])
            .unwrap_or_default()
        );
        let (status, location, _) = raw_get(&h, fw, &ok).await;
        assert_eq!(status, 302);
        let location = location.expect("location");
        assert!(location.as_str().starts_with(&h.idp.issuer()));
        assert_eq!(
            param(&location, "post_logout_redirect_uri").as_deref(),
            Some("https://app.example.com/bye")
        );
        for bad in [
            "https://app.example.com/bye/",
            "https://app.example.com/byex",
            "https://app.example.com/BYE",
            "https://app.example.com/x/../bye",
            "https://user@app.example.com/bye",
            "https://evil.example.com/bye",
        ] {
            let path = format!(
                "/api/auth/v2/logout?{}",
                serde_urlencoded::to_string([("post_logout_redirect_uri", bad)])
                    .unwrap_or_default()
            );
            let (status, location, _) = raw_get(&h, fw, &path).await;
            assert_eq!(status, 400, "{bad}");
            assert!(location.is_none());
        }
    }
}

/// The router is an ordinary framework object: the application adds its own routes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_add_their_own_routes_next_to_the_auth_endpoints() {
    let h = Harness::start().await;
    for fw in FRAMEWORKS {
        let reply = h.get(fw, "/api/auth/v2/auth-ports", None).await;
        assert_eq!(
            (reply.status, reply.body),
            (200, json!({"valid_ports": [8080, 8443]}))
        );
    }
}
