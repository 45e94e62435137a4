//! The code flow and refresh rotation of the mock provider, over real HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::tests::{get_json, parts, verify_with_jwks};
use super::{Endpoint, MockProvider, SigningAlg};

pub(super) const CLIENT: &str = "app";
pub(super) const REDIRECT: &str = "http://localhost:53100/callback";
pub(super) const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abc";

/// A client that does not follow redirects.
pub(super) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// The query of a redirect's `Location`.
pub(super) fn location_query(response: &reqwest::Response) -> (String, HashMap<String, String>) {
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII location")
        .to_owned();
    let url = url::Url::parse(&location).expect("absolute location");
    let query = url.query_pairs().into_owned().collect();
    (location, query)
}

/// GETs `/authorize` with `params`; returns the status and the redirect's query (empty when not
/// redirected).
async fn authorize(
    provider: &MockProvider,
    params: &[(&str, &str)],
) -> (u16, HashMap<String, String>) {
    let url = url::Url::parse_with_params(&provider.endpoint_url(Endpoint::Authorize), params)
        .expect("authorize URL");
    let response = http().get(url).send().await.expect("authorize answered");
    let status = response.status().as_u16();
    if status == 302 {
        (status, location_query(&response).1)
    } else {
        (status, HashMap::new())
    }
}

/// A successful authorization request with PKCE; returns the code.
pub(super) async fn code(provider: &MockProvider) -> String {
    let challenge = challenge(VERIFIER);
    let (status, query) = authorize(
        provider,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile"),
            ("state", "st4te"),
            ("nonce", "n0nce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    query.get("code").expect("a code").clone()
}

/// POSTs `form` to `/token`; returns the status and JSON body.
pub(super) async fn token(provider: &MockProvider, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http()
        .post(provider.endpoint_url(Endpoint::Token))
        .form(form)
        .send()
        .await
        .expect("token answered");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON body"),
    )
}

async fn redeem(provider: &MockProvider, code: &str, verifier: &str) -> (u16, Value) {
    token(
        provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", CLIENT),
        ],
    )
    .await
}

/// A full code flow; returns the token answer.
pub(super) async fn login(provider: &MockProvider) -> Value {
    let code = code(provider).await;
    let (status, body) = redeem(provider, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(provider: &MockProvider, refresh_token: &str) -> (u16, Value) {
    token(
        provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT),
        ],
    )
    .await
}

fn str_of<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {body}"))
}

#[tokio::test]
async fn code_flow_with_pkce_issues_verifiable_tokens() {
    let provider = MockProvider::start().await.expect("start");
    let challenge = challenge(VERIFIER);

    let (status, query) = authorize(
        &provider,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", "http://localhost:53100/callback?keep=1"),
            ("scope", "openid profile"),
            ("state", "st4te"),
            ("nonce", "n0nce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;

    assert_eq!(status, 302);
    assert_eq!(query["keep"], "1", "the redirect_uri's own query is kept");
    assert_eq!(query["state"], "st4te");
    assert_eq!(query["iss"], provider.issuer());
    let sent = provider.last_authorize_request().expect("recorded");
    assert_eq!(sent["code_challenge"], challenge);
    let (status, body) = token(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", "http://localhost:53100/callback?keep=1"),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        provider.last_token_request().expect("recorded")["code_verifier"],
        VERIFIER
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["scope"], "openid profile");
    assert!(str_of(&body, "refresh_token").len() >= 32);

    let access = verify_with_jwks(&provider, str_of(&body, "access_token"))
        .await
        .expect("verifies");
    assert_eq!(access["iss"], provider.issuer());
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["aud"], CLIENT);
    assert_eq!(access["scope"], "openid profile");
    assert_eq!(access["email"], "alice@example.com");
    assert_eq!(access["preferred_username"], "alice");
    assert!(access["jti"].is_string());
    assert_eq!(
        access["exp"].as_i64(),
        access["iat"].as_i64().map(|iat| iat + 300)
    );
    for name_part in ["name", "given_name", "family_name"] {
        assert!(
            access.get(name_part).is_none(),
            "{name_part} is left to userinfo"
        );
    }
    let id = verify_with_jwks(&provider, str_of(&body, "id_token"))
        .await
        .expect("verifies");
    assert_eq!(id["iss"], provider.issuer());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], CLIENT);
    assert_eq!(id["azp"], CLIENT);
    assert_eq!(id["nonce"], "n0nce");
    assert!(id["auth_time"].is_i64() && id["iat"].is_i64() && id["exp"].is_i64());
    assert_eq!(provider.hits(Endpoint::Authorize), 1);
    assert_eq!(provider.hits(Endpoint::Token), 1);
}

#[tokio::test]
async fn pkce_mismatch_or_missing_verifier_is_invalid_grant() {
    let provider = MockProvider::start().await.expect("start");

    let wrong = "another-verifier-0123456789-0123456789-0123456789";
    let (status, body) = redeem(&provider, &code(&provider).await, wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(body["error_description"].is_string());

    let code = code(&provider).await;
    let (status, body) = token(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A challenge-less authorization request cannot pass PKCE either.
    let (_, query) = authorize(
        &provider,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
        ],
    )
    .await;
    let (status, _) = redeem(&provider, &query["code"], VERIFIER).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn pkce_check_can_be_switched_off() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_check_pkce(false);

    let (status, body) = redeem(&provider, &code(&provider).await, "whatever").await;

    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn plain_pkce_is_refused_at_authorize() {
    let provider = MockProvider::start().await.expect("start");

    let (status, query) = authorize(
        &provider,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;

    assert_eq!(status, 302);
    assert_eq!(query["error"], "invalid_request");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn code_reuse_is_invalid_grant_and_revokes_what_it_issued() {
    let provider = MockProvider::start().await.expect("start");
    let code = code(&provider).await;
    let (status, first) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(status, 200);

    let (status, second) = redeem(&provider, &code, VERIFIER).await;

    assert_eq!(
        (status, second["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = refresh(&provider, str_of(&first, "refresh_token")).await;
    assert_eq!(status, 400, "the replayed code's refresh token is revoked");
}

#[tokio::test]
async fn code_needs_the_same_redirect_uri_and_client() {
    let provider = MockProvider::start().await.expect("start");

    let (status, body) = token(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code(&provider).await),
            ("redirect_uri", "http://localhost:53101/callback"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, _) = token(
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code(&provider).await),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", "someone-else"),
        ],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn authorize_rejects_incomplete_requests_without_redirecting() {
    let provider = MockProvider::start().await.expect("start");
    let full = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("state", "s"),
    ];
    for missing in ["client_id", "redirect_uri", "state"] {
        let params: Vec<_> = full
            .iter()
            .copied()
            .filter(|(name, _)| *name != missing)
            .collect();
        let (status, _) = authorize(&provider, &params).await;
        assert_eq!(status, 400, "without {missing}");
    }
    let (status, query) = authorize(
        &provider,
        &[
            ("response_type", "token"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!(
        (status, query["error"].as_str()),
        (302, "unsupported_response_type")
    );
    assert_eq!(
        provider.last_authorize_request().expect("recorded")["response_type"],
        "token"
    );
}

#[tokio::test]
async fn authorize_error_iss_switch_and_response_tweak() {
    let provider = MockProvider::start().await.expect("start");
    let params = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("state", "s"),
    ];

    provider.set_authorize_error(Some("access_denied".to_owned()));
    let (_, query) = authorize(&provider, &params).await;
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "s");
    assert!(!query.contains_key("code"));
    provider.set_authorize_error(None);

    provider.set_iss_in_authorization_response(false);
    let (_, query) = authorize(&provider, &params).await;
    assert!(query.contains_key("code") && !query.contains_key("iss"));
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["authorization_response_iss_parameter_supported"], false);
    provider.set_iss_in_authorization_response(true);

    provider.set_authorize_response_tweak(Some(Arc::new(|pairs: &mut Vec<(String, String)>| {
        for (name, value) in pairs.iter_mut() {
            if name == "iss" {
                *value = "https://evil.example".to_owned();
            }
        }
    })));
    let (_, query) = authorize(&provider, &params).await;
    assert_eq!(query["iss"], "https://evil.example");
}

#[tokio::test]
async fn id_token_tweak_kid_and_token_response_tweak() {
    let provider = MockProvider::start().await.expect("start");
    let spare = provider.add_key(SigningAlg::ES256);
    provider.set_id_token_tweak(Some(Arc::new(
        |claims: &mut serde_json::Map<String, Value>| {
            claims.insert("nonce".into(), json!("evil"));
            claims.remove("sub");
        },
    )));
    provider.set_id_token_kid(Some(spare.clone()));
    provider.set_token_response_tweak(Some(Arc::new(
        |answer: &mut serde_json::Map<String, Value>| {
            answer.insert("extra".into(), json!(1));
        },
    )));

    let body = login(&provider).await;

    let (header, id, _, _) = parts(str_of(&body, "id_token"));
    assert_eq!(header["kid"], spare.as_str());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(id["nonce"], "evil");
    assert!(id.get("sub").is_none());
    verify_with_jwks(&provider, str_of(&body, "id_token"))
        .await
        .expect("verifies");
    assert_eq!(
        parts(str_of(&body, "access_token")).0["kid"],
        provider.current_kid()
    );
    assert_eq!(body["extra"], 1);
}

#[tokio::test]
async fn user_and_access_token_audience_are_configurable() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_user(
        "bob",
        json!({"sub": "ignored", "groups": ["admins"], "name": "Bob"}),
    );
    provider.set_access_token_audience("my-api");
    provider.set_access_token_expires_in(60);

    let body = login(&provider).await;

    let access = parts(str_of(&body, "access_token")).1;
    assert_eq!(access["sub"], "bob");
    assert_eq!(access["aud"], "my-api");
    assert_eq!(access["groups"], json!(["admins"]));
    assert!(access.get("name").is_none());
    assert_eq!(body["expires_in"], 60);
    let id = parts(str_of(&body, "id_token")).1;
    assert_eq!(
        (id["sub"].as_str(), id["aud"].as_str()),
        (Some("bob"), Some(CLIENT))
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let provider = MockProvider::start().await.expect("start");
    let first = login(&provider).await;
    let r1 = str_of(&first, "refresh_token");

    let (status, second) = refresh(&provider, r1).await;
    assert_eq!(status, 200, "{second}");
    let r2 = str_of(&second, "refresh_token");
    assert_ne!(r1, r2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(parts(str_of(&second, "id_token")).1["nonce"], "n0nce");
    assert_eq!(provider.refresh_count(), 1);

    let (status, reused) = refresh(&provider, r1).await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, newest) = refresh(&provider, r2).await;
    assert_eq!(
        (status, newest["error"].as_str()),
        (400, Some("invalid_grant")),
        "family revoked"
    );
    assert_eq!(provider.refresh_count(), 1);
    let (status, _) = refresh(&provider, "never-issued").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn refresh_lifetime_zero_means_no_expiry_and_negative_is_dead() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_refresh_expires_in(0);
    let body = login(&provider).await;
    assert_eq!(body["refresh_expires_in"], 0);
    let (status, body) = refresh(&provider, str_of(&body, "refresh_token")).await;
    assert_eq!(status, 200);

    provider.set_refresh_expires_in(-1);
    let (status, body) = refresh(&provider, str_of(&body, "refresh_token")).await;
    assert_eq!(status, 200, "issued while the lifetime was 0");
    let (status, dead) = refresh(&provider, str_of(&body, "refresh_token")).await;
    assert_eq!(
        (status, dead["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn revoke_refresh_tokens_ends_every_session() {
    let provider = MockProvider::start().await.expect("start");
    let body = login(&provider).await;

    provider.revoke_refresh_tokens();

    let (status, _) = refresh(&provider, str_of(&body, "refresh_token")).await;
    assert_eq!(status, 400);
    assert_eq!(provider.refresh_count(), 0);
}

/// The revocation endpoint (RFC 7009): a revoked refresh token no longer refreshes, an unknown
/// token is answered the same 200, another client's token is left alone, no token is 400, and
/// the discovery document advertises the endpoint.
#[tokio::test]
async fn revocation_endpoint_revokes_refresh_tokens() {
    let provider = MockProvider::start().await.expect("start");
    let revoke = |form: Vec<(&'static str, String)>| {
        let url = provider.endpoint_url(Endpoint::Revocation);
        async move {
            let response = http().post(url).form(&form).send().await.expect("answered");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(
        doc["revocation_endpoint"].as_str(),
        Some(provider.endpoint_url(Endpoint::Revocation).as_str())
    );
    let body = login(&provider).await;
    let token = str_of(&body, "refresh_token").to_owned();

    let other = vec![("token", token.clone()), ("client_id", "other".to_owned())];
    assert_eq!(revoke(other).await.0, 200);
    let (status, rotated) = refresh(&provider, &token).await;
    assert_eq!(status, 200, "another client's revocation changed nothing");
    let token = str_of(&rotated, "refresh_token").to_owned();
    let unknown = vec![
        ("token", "nope".to_owned()),
        ("client_id", CLIENT.to_owned()),
    ];
    assert_eq!(revoke(unknown).await, (200, String::new()));
    assert_eq!(revoke(vec![("client_id", CLIENT.to_owned())]).await.0, 400);
    let mine = vec![("token", token.clone()), ("client_id", CLIENT.to_owned())];
    assert_eq!(revoke(mine).await.0, 200);
    let recorded = provider.last_revocation_request().expect("recorded");
    assert_eq!(recorded.get("token"), Some(&token));

    let (status, dead) = refresh(&provider, &token).await;
    assert_eq!(
        (status, dead["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(provider.refresh_count(), 1);
}

#[tokio::test]
async fn unknown_or_missing_grant_type_is_an_oauth_error() {
    let provider = MockProvider::start().await.expect("start");

    let (status, body) = token(
        &provider,
        &[("grant_type", "password"), ("username", "alice")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    assert!(body["error_description"].is_string());

    let (status, body) = token(&provider, &[("code", "x")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        provider.last_token_request().expect("recorded")["code"],
        "x"
    );
}
