//! The device flow, client authentication, userinfo, end session, discovery of the flow
//! endpoints, and faults on them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::tests::get_json;
use super::tests_flows::{CLIENT, REDIRECT, VERIFIER, code, http, location_query, login, token};
use super::{Endpoint, Fault, MockProvider};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// POSTs to `/device`; returns the status and JSON body.
async fn device(provider: &MockProvider, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http()
        .post(provider.endpoint_url(Endpoint::Device))
        .form(form)
        .send()
        .await
        .expect("device answered");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON body"),
    )
}

/// Starts a device authorization for [`CLIENT`]; returns the answer.
async fn start_device(provider: &MockProvider) -> Value {
    let (status, body) = device(provider, &[("client_id", CLIENT), ("scope", "openid")]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn poll(provider: &MockProvider, device_code: &str) -> (u16, Value) {
    token(
        provider,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", CLIENT),
        ],
    )
    .await
}

async fn poll_error(provider: &MockProvider, device_code: &str) -> String {
    let (status, body) = poll(provider, device_code).await;
    assert_eq!(status, 400, "{body}");
    body["error"].as_str().expect("error code").to_owned()
}

fn device_code(body: &Value) -> &str {
    body["device_code"].as_str().expect("device_code")
}

async fn userinfo(provider: &MockProvider, token: Option<&str>) -> reqwest::Response {
    let mut request = http().get(provider.endpoint_url(Endpoint::Userinfo));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("userinfo answered")
}

#[tokio::test]
async fn device_flow_pending_then_approved_then_spent() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_device_interval(Some(0));

    let body = start_device(&provider).await;

    let user_code = body["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(user_code.as_bytes()[4], b'-');
    assert!(
        user_code
            .chars()
            .all(|c| c == '-' || c.is_ascii_uppercase())
    );
    let verification_uri = format!("{}/device/verify", provider.issuer());
    assert_eq!(body["verification_uri"], verification_uri.as_str());
    assert_eq!(
        body["verification_uri_complete"],
        format!("{verification_uri}?user_code={user_code}")
    );
    assert_eq!(
        (body["expires_in"].as_u64(), body["interval"].as_u64()),
        (Some(600), Some(0))
    );
    assert_eq!(
        provider.last_device_code(),
        Some((device_code(&body).to_owned(), user_code.to_owned()))
    );
    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "authorization_pending"
    );
    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "authorization_pending"
    );

    assert!(provider.approve_device(&user_code.to_lowercase().replace('-', "")));
    assert!(!provider.deny_device(user_code), "no longer pending");
    let (status, tokens) = poll(&provider, device_code(&body)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "invalid_grant"
    );
    assert_eq!(poll_error(&provider, "never-issued").await, "invalid_grant");
}

#[tokio::test]
async fn device_polling_too_fast_is_slow_down() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_device_interval(Some(1));
    let body = start_device(&provider).await;

    assert_eq!(poll_error(&provider, device_code(&body)).await, "slow_down");
    assert_eq!(poll_error(&provider, device_code(&body)).await, "slow_down");
}

#[tokio::test]
async fn device_without_interval_omits_it_and_enforces_five_seconds() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_device_interval(None);

    let body = start_device(&provider).await;

    assert!(body.get("interval").is_none(), "{body}");
    assert_eq!(poll_error(&provider, device_code(&body)).await, "slow_down");
}

#[tokio::test]
async fn denied_device_is_access_denied() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_device_interval(Some(0));
    let body = start_device(&provider).await;

    assert!(provider.deny_device(body["user_code"].as_str().expect("user_code")));

    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "access_denied"
    );
    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "access_denied"
    );
}

#[tokio::test]
async fn device_past_expires_in_is_expired_token() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_device_interval(Some(0));
    provider.set_device_expires_in(0);
    let body = start_device(&provider).await;
    assert_eq!(body["expires_in"], 0);

    provider.approve_device(body["user_code"].as_str().expect("user_code"));

    assert_eq!(
        poll_error(&provider, device_code(&body)).await,
        "expired_token"
    );
}

#[tokio::test]
async fn device_flow_can_be_disabled() {
    let provider = MockProvider::start().await.expect("start");
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/device", provider.issuer())
    );

    provider.set_device_enabled(false);

    let doc = get_json(&provider.discovery_url()).await;
    assert!(doc.get("device_authorization_endpoint").is_none());
    let (status, _) = device(&provider, &[("client_id", CLIENT)]).await;
    assert_eq!(status, 404);
    assert_eq!(provider.hits(Endpoint::Device), 1);
}

#[tokio::test]
async fn device_authorization_needs_the_client_secret_when_set() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_client(CLIENT, Some("s3cret"));

    let (status, body) = device(&provider, &[("client_id", CLIENT)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = device(
        &provider,
        &[("client_id", CLIENT), ("client_secret", "s3cret")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = device(&provider, &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn client_secret_basic_and_post_are_required_when_set() {
    let provider = MockProvider::start().await.expect("start");
    let secret = "s3 cr&t:x";
    provider.set_client(CLIENT, Some(secret));
    let grant = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ]
    };

    // No secret: 401 invalid_client.
    let mut form = grant(&code(&provider).await);
    form.push(("client_id", CLIENT.to_owned()));
    let response = http()
        .post(provider.endpoint_url(Endpoint::Token))
        .form(&form)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client");

    // client_secret_basic, parts form-encoded (RFC 6749 section 2.3.1).
    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", encoded(CLIENT), encoded(secret)));
    let response = http()
        .post(provider.endpoint_url(Endpoint::Token))
        .header("authorization", format!("Basic {basic}"))
        .form(&grant(&code(&provider).await))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);

    // client_secret_post.
    let mut form = grant(&code(&provider).await);
    form.extend([
        ("client_id", CLIENT.to_owned()),
        ("client_secret", secret.to_owned()),
    ]);
    let response = http()
        .post(provider.endpoint_url(Endpoint::Token))
        .form(&form)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);

    // Wrong secret, and an unknown client.
    for (id, pass) in [(CLIENT, "wrong"), ("other", secret)] {
        let response = http()
            .post(provider.endpoint_url(Endpoint::Token))
            .basic_auth(id, Some(pass))
            .form(&grant("any"))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 401, "{id}:{pass}");
    }
}

#[tokio::test]
async fn userinfo_answers_for_issued_access_tokens_only() {
    let provider = MockProvider::start().await.expect("start");
    let tokens = login(&provider).await;
    let access = tokens["access_token"].as_str().expect("access_token");

    let response = userinfo(&provider, Some(access)).await;
    assert_eq!(response.status().as_u16(), 200);
    let claims: Value = response.json().await.expect("JSON");
    assert_eq!(
        claims,
        json!({
            "sub": "alice",
            "preferred_username": "alice",
            "given_name": "Alice",
            "family_name": "van der Berg",
            "name": "Alice van der Berg",
            "email": "alice@example.com",
            "email_verified": true,
        })
    );

    let forged = provider.token().sign();
    let response = userinfo(&provider, Some(&forged)).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .is_ok_and(|v| v.contains("invalid_token"))
    );
    assert_eq!(userinfo(&provider, None).await.status().as_u16(), 401);

    provider.set_userinfo_override(Some(json!({"sub": "mallory"})));
    let claims: Value = userinfo(&provider, Some(access))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(claims, json!({"sub": "mallory"}));
    assert_eq!(provider.hits(Endpoint::Userinfo), 4);
}

#[tokio::test]
async fn logout_redirects_with_state_or_says_logged_out() {
    let provider = MockProvider::start().await.expect("start");

    let url = url::Url::parse_with_params(
        &provider.endpoint_url(Endpoint::EndSession),
        [
            ("post_logout_redirect_uri", "https://app.example/bye?x=1"),
            ("state", "st"),
            ("id_token_hint", "h"),
        ],
    )
    .expect("logout URL");
    let response = http().get(url).send().await.expect("answered");
    assert_eq!(response.status().as_u16(), 302);
    let (location, _) = location_query(&response);
    assert_eq!(location, "https://app.example/bye?x=1&state=st");
    let recorded = provider.last_end_session_request().expect("recorded");
    assert_eq!(recorded["id_token_hint"], "h");

    let response = http()
        .get(provider.endpoint_url(Endpoint::EndSession))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("text"), "logged out");
}

#[tokio::test]
async fn discovery_advertises_the_flow_endpoints() {
    let provider = MockProvider::start().await.expect("start");
    let issuer = provider.issuer();

    let doc = get_json(&provider.discovery_url()).await;

    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(
        doc["token_endpoint"],
        provider.endpoint_url(Endpoint::Token)
    );
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{issuer}/logout"));
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{issuer}/device")
    );
    assert_eq!(
        doc["grant_types_supported"],
        json!(["authorization_code", "refresh_token", DEVICE_GRANT])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn faults_and_hits_apply_to_the_flow_endpoints() {
    let provider = MockProvider::start().await.expect("start");
    let http = http();
    let requests = [
        (
            Endpoint::Authorize,
            http.get(provider.endpoint_url(Endpoint::Authorize)),
        ),
        (
            Endpoint::Token,
            http.post(provider.endpoint_url(Endpoint::Token))
                .form(&[("grant_type", "refresh_token")]),
        ),
        (
            Endpoint::Device,
            http.post(provider.endpoint_url(Endpoint::Device))
                .form(&[("client_id", CLIENT)]),
        ),
        (
            Endpoint::Userinfo,
            http.get(provider.endpoint_url(Endpoint::Userinfo)),
        ),
        (
            Endpoint::EndSession,
            http.get(provider.endpoint_url(Endpoint::EndSession)),
        ),
    ];
    for (endpoint, request) in requests {
        let down = request.try_clone().expect("clonable");
        let garbage = request.try_clone().expect("clonable");
        provider.set_fault(endpoint, Fault::Status(503));
        let response = request.send().await.expect("answered");
        assert_eq!(response.status().as_u16(), 503, "{endpoint:?}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], "mock_fault");
        assert_eq!(provider.hits(endpoint), 1, "{endpoint:?}");

        provider.set_fault(endpoint, Fault::Down);
        assert!(down.send().await.is_err(), "{endpoint:?} is down");
        assert_eq!(provider.hits(endpoint), 1, "{endpoint:?}");

        provider.set_fault(endpoint, Fault::Garbage);
        let response = garbage.send().await.expect("answered");
        assert_eq!(response.status().as_u16(), 200, "{endpoint:?}");
        assert_eq!(provider.hits(endpoint), 2, "{endpoint:?}");
        provider.set_fault(endpoint, Fault::None);
    }
    assert_eq!(provider.hits(Endpoint::Discovery), 0);
    assert!(
        provider.last_token_request().is_none(),
        "faulted requests never reach the handler"
    );
}
