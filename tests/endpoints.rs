//! The auth endpoints on both frameworks against the mock provider: login, callback, token,
//! device, logout and userinfo, and the SECURITY.md cases D and E that concern them.

use oidc_auth::testing::{Endpoint, MockProvider};
use oidc_auth_tests::{
    FRAMEWORKS, Framework, Harness, Reply, browser_login, flow_provider, into_reply,
};
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

/// Sends a token request of `len` bytes straight over TCP, chunked (no `Content-Length`, so the
/// limit must hold while reading) and returns the status line and the body.
async fn raw_chunked_token_request(h: &Harness, fw: Framework, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = Url::parse(&h.url(fw, "/api/auth/v2/token")).expect("url");
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(80)
    );
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        url.path()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = "x".repeat(1024);
    let mut sent = 0;
    while sent < len {
        let part = format!("{:x}\r\nrefresh-token={chunk}\r\n", chunk.len() + 14);
        if stream.write_all(part.as_bytes()).await.is_err() {
            break;
        }
        sent += chunk.len() + 14;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// A token request body over the 16 KiB limit is 413 with the JSON error body of every other
/// token-endpoint error (`invalid_request` at top level), on both frameworks, with or without a
/// `Content-Length`, and the provider is not called; a revocation request too. Just under the
/// limit the form is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_token_requests_are_413_with_a_json_error() {
    let h = Harness::start().await;
    let big = "x".repeat(20 * 1024);
    let fits = "x".repeat(16 * 1024 - 200);
    for fw in FRAMEWORKS {
        let provider_calls = h.idp.hits(Endpoint::Token);
        let reply = h
            .post_form(fw, "/api/auth/v2/token", &[("refresh-token", &big)])
            .await;
        assert_eq!(reply.status, 413, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.error(), Some("invalid_request"), "{fw:?}");
        let (status, body) = raw_chunked_token_request(&h, fw, 64 * 1024).await;
        assert_eq!(status, 413, "{fw:?} chunked: {body}");
        assert!(
            body.contains("\"invalid_request\""),
            "{fw:?} chunked: {body}"
        );
        assert_eq!(h.idp.hits(Endpoint::Token), provider_calls, "{fw:?}");
        // The revocation endpoint has the same limit.
        let revocations = h.idp.hits(Endpoint::Revocation);
        let reply = h
            .post_form(fw, "/api/auth/v2/revoke", &[("token", &big)])
            .await;
        assert_eq!(reply.status, 413, "{fw:?} revoke: {}", reply.raw_body);
        assert_eq!(reply.error(), Some("invalid_request"), "{fw:?} revoke");
        assert_eq!(h.idp.hits(Endpoint::Revocation), revocations, "{fw:?}");
        let reply = h
            .post_form(fw, "/api/auth/v2/token", &[("refresh-token", &fits)])
            .await;
        assert_eq!(reply.status, 400, "{fw:?}: {}", reply.raw_body);
        assert_eq!(reply.error(), Some("invalid_grant"), "{fw:?}");
    }
    // The core says the same to an adapter that reads a larger body itself.
    let form = format!("refresh-token={big}");
    let direct = h.auth.token_request(form.as_bytes(), []).await;
    let error = direct.expect_err("refused");
    assert_eq!(
        (error.status(), error.code()),
        (413, Some("invalid_request"))
    );
}

/// A form sent with a content coding is 400 `invalid_request` on both frameworks and reaches
/// no provider: actix-web decodes a compressed body (with its compression feature on) while
/// axum would read the coded bytes as they are, so the two would otherwise disagree about what
/// the form says. `identity` is no coding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_with_a_content_coding_is_refused_on_both_frameworks() {
    let h = Harness::start().await;
    for fw in FRAMEWORKS {
        for path in ["/api/auth/v2/token", "/api/auth/v2/revoke"] {
            let calls = (
                h.idp.hits(Endpoint::Token),
                h.idp.hits(Endpoint::Revocation),
            );
            let send = |coding: &'static str| {
                h.client()
                    .post(h.url(fw, path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-encoding", coding)
                    .body("refresh-token=abc&token=abc")
                    .send()
            };
            let refused = oidc_auth_tests::into_reply(send("gzip").await.expect("an answer")).await;
            assert_eq!(
                (refused.status, refused.error()),
                (400, Some("invalid_request")),
                "{fw:?} {path}: {}",
                refused.raw_body
            );
            assert_eq!(
                (
                    h.idp.hits(Endpoint::Token),
                    h.idp.hits(Endpoint::Revocation)
                ),
                calls,
                "{fw:?} {path}"
            );
            let plain =
                oidc_auth_tests::into_reply(send("identity").await.expect("an answer")).await;
            assert_ne!(plain.error(), Some("invalid_request"), "{fw:?} {path}");
        }
    }
}

/// HEAD `url`: the status, and the `Allow` header when it is 405 (which must then name GET).
async fn head(h: &Harness, url: &str, token: Option<&str>) -> u16 {
    let mut request = h.client().head(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    if status == 405 {
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            allow.split(',').any(|m| m.trim() == "GET"),
            "HEAD {url}: Allow {allow:?}"
        );
    }
    status
}

/// HEAD on a GET auth endpoint is 405, with an `Allow` that names GET, on both frameworks and
/// does none of the endpoint's work.
/// axum's `get` runs the handler for HEAD too, so a HEAD on the callback used to exchange the
/// code at the provider and spend the single-use state, leaving the real GET to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_get_auth_endpoint_is_405_and_spends_no_state() {
    let h = Harness::with(flow_provider().await, |b| b, None).await;
    for fw in FRAMEWORKS {
        let server_callback = h.url(fw, "/api/auth/v2/callback");
        let (_, callback) = browser_login(&h, fw, &server_callback).await;
        let exchanges = h.idp.hits(Endpoint::Token);
        assert_eq!(head(&h, callback.as_str(), None).await, 405, "{fw:?}");
        assert_eq!(
            h.idp.hits(Endpoint::Token),
            exchanges,
            "{fw:?}: no code exchange"
        );
        let reply = h.get_url(&callback).await;
        assert_eq!(
            reply.status, 200,
            "{fw:?}: the state is still unspent: {}",
            reply.raw_body
        );
        let access = reply.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let userinfo = h.idp.hits(Endpoint::Userinfo);
        for path in [
            login_path(LOOPBACK),
            "/api/auth/v2/logout".to_owned(),
            "/api/auth/v2/userinfo".to_owned(),
        ] {
            let status = head(&h, &h.url(fw, &path), Some(&access)).await;
            assert_eq!(status, 405, "{fw:?} HEAD {path}");
        }
        assert_eq!(h.idp.hits(Endpoint::Userinfo), userinfo, "{fw:?}");
    }
}
