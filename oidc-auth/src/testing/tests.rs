//! Behaviour of the mock provider, over real HTTP.

use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Endpoint, Fault, MockProvider, SigningAlg};

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

pub(super) async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("request")
        .error_for_status()
        .expect("success status")
        .json()
        .await
        .expect("JSON body")
}

fn decode(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url without padding")
}

fn jwk_bytes(jwk: &Value, field: &str) -> Vec<u8> {
    decode(jwk[field].as_str().expect("JWK field is a string"))
}

/// Splits a compact JWS into (header JSON, claims JSON, signing input, signature).
pub(super) fn parts(token: &str) -> (Value, Value, String, Vec<u8>) {
    let pieces: Vec<&str> = token.split('.').collect();
    assert_eq!(pieces.len(), 3, "compact JWS has three parts: {token}");
    let header = serde_json::from_slice(&decode(pieces[0])).expect("header JSON");
    let claims = serde_json::from_slice(&decode(pieces[1])).expect("claims JSON");
    let input = format!("{}.{}", pieces[0], pieces[1]);
    (header, claims, input, decode(pieces[2]))
}

/// Verifies `token` against the provider's published JWKS, the way a relying party would.
pub(super) async fn verify_with_jwks(
    provider: &MockProvider,
    token: &str,
) -> Result<Value, String> {
    let (header, claims, input, sig) = parts(token);
    let jwks = get_json(&provider.jwks_uri()).await;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} not published"))?;
    let alg = jwk["alg"].as_str().ok_or("no alg")?;
    assert_eq!(header["alg"], alg, "header alg matches the key");
    let msg = input.as_bytes();
    let verified = match jwk["kty"].as_str() {
        Some("RSA") => {
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let n = jwk_bytes(jwk, "n");
            let e = jwk_bytes(jwk, "e");
            RsaPublicKeyComponents { n: &n, e: &e }.verify(params, msg, &sig)
        }
        Some("EC") => {
            let params = if jwk["crv"] == "P-384" {
                &signature::ECDSA_P384_SHA384_FIXED
            } else {
                &signature::ECDSA_P256_SHA256_FIXED
            };
            let mut point = vec![0x04];
            point.extend(jwk_bytes(jwk, "x"));
            point.extend(jwk_bytes(jwk, "y"));
            UnparsedPublicKey::new(params, &point).verify(msg, &sig)
        }
        Some("OKP") => {
            UnparsedPublicKey::new(&signature::ED25519, jwk_bytes(jwk, "x")).verify(msg, &sig)
        }
        other => return Err(format!("unexpected kty {other:?}")),
    };
    verified.map_err(|_| "bad signature".to_owned())?;
    Ok(claims)
}

fn published_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[tokio::test]
async fn discovery_describes_the_provider() {
    let provider = MockProvider::start().await.expect("start");
    let issuer = provider.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:") && !issuer.ends_with('/'));
    assert_eq!(
        provider.discovery_url(),
        format!("{issuer}/.well-known/openid-configuration")
    );

    let doc = get_json(&provider.discovery_url()).await;

    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["jwks_uri"], provider.jwks_uri());
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{issuer}/logout"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
}

#[tokio::test]
async fn jwks_publishes_the_rsa_key_as_sig_jwk() {
    let provider = MockProvider::start().await.expect("start");

    let jwks = get_json(&provider.jwks_uri()).await;

    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["kid"], provider.current_kid());
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["e"], "AQAB");
    let n = jwk_bytes(jwk, "n");
    assert_eq!(n.len(), 256);
    assert_ne!(n[0], 0, "modulus has no leading zero byte");
}

#[tokio::test]
async fn default_rs256_token_verifies_and_has_default_claims() {
    let provider = MockProvider::start().await.expect("start");

    let token = provider.token().sign();

    let (header, _, _, _) = parts(&token);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": provider.current_kid()})
    );
    let claims = verify_with_jwks(&provider, &token).await.expect("verifies");
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["sub"], "alice");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((iat - now()).abs() <= 5);
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));
    assert!(claims.get("aud").is_none());
}

#[tokio::test]
async fn es256_token_verifies_with_fixed_size_signature() {
    let provider = MockProvider::start_with_alg(SigningAlg::ES256)
        .await
        .expect("start");

    let token = provider.token().sign();

    assert_eq!(parts(&token).3.len(), 64);
    verify_with_jwks(&provider, &token).await.expect("verifies");
    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
}

#[tokio::test]
async fn eddsa_token_verifies() {
    let provider = MockProvider::start_with_alg(SigningAlg::EdDSA)
        .await
        .expect("start");

    let token = provider.token().sign();

    verify_with_jwks(&provider, &token).await.expect("verifies");
    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
}

#[tokio::test]
async fn every_other_alg_signs_verifiable_tokens() {
    let provider = MockProvider::start().await.expect("start");
    for alg in [
        SigningAlg::RS384,
        SigningAlg::RS512,
        SigningAlg::PS256,
        SigningAlg::PS384,
        SigningAlg::PS512,
        SigningAlg::ES384,
    ] {
        provider.rotate_key(alg);

        let token = provider.token().sign();

        verify_with_jwks(&provider, &token)
            .await
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
    }
}

#[tokio::test]
async fn rotate_key_signs_with_the_new_key_and_keeps_the_old_published() {
    let provider = MockProvider::start().await.expect("start");
    let old = provider.current_kid();

    let new = provider.rotate_key(SigningAlg::ES256);

    assert_ne!(old, new);
    assert_eq!(provider.current_kid(), new);
    let token = provider.token().sign();
    assert_eq!(parts(&token).0["kid"], new.as_str());
    verify_with_jwks(&provider, &token).await.expect("verifies");
    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(published_kids(&jwks), vec![old, new]);
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
}

#[tokio::test]
async fn add_key_publishes_without_becoming_current() {
    let provider = MockProvider::start().await.expect("start");
    let current = provider.current_kid();

    let spare = provider.add_key(SigningAlg::EdDSA);

    assert_eq!(provider.current_kid(), current);
    let token = provider.token().kid(&spare).sign();
    assert_eq!(parts(&token).0["alg"], "EdDSA");
    verify_with_jwks(&provider, &token).await.expect("verifies");
}

#[tokio::test]
async fn retired_key_is_unpublished_but_still_signs() {
    let provider = MockProvider::start().await.expect("start");
    let old = provider.current_kid();
    let new = provider.rotate_key(SigningAlg::RS256);

    provider.retire_key(&old);

    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(published_kids(&jwks), vec![new]);
    let token = provider.token().kid(&old).sign();
    assert_eq!(parts(&token).0["kid"], old.as_str());
    let err = verify_with_jwks(&provider, &token)
        .await
        .expect_err("kid gone");
    assert!(err.contains("not published"), "{err}");
}

#[tokio::test]
async fn unknown_kid_is_written_to_the_header_and_signed_with_the_current_key() {
    let provider = MockProvider::start().await.expect("start");

    let token = provider.token().kid("no-such-key").sign();

    let (header, _, input, sig) = parts(&token);
    assert_eq!(header["kid"], "no-such-key");
    let retagged = provider.sign_raw(
        &decode(input.split('.').next().expect("header part")),
        &decode(input.split('.').nth(1).expect("payload part")),
        &provider.current_kid(),
    );
    assert_eq!(parts(&retagged).3, sig, "RS256 is deterministic");
}

#[tokio::test]
async fn sign_raw_signs_arbitrary_bytes() {
    let provider = MockProvider::start_with_alg(SigningAlg::EdDSA)
        .await
        .expect("start");
    let kid = provider.current_kid();
    let header = format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#);

    let token = provider.sign_raw(header.as_bytes(), b"not json at all", &kid);

    let pieces: Vec<&str> = token.split('.').collect();
    assert_eq!(decode(pieces[1]), b"not json at all");
    let jwks = get_json(&provider.jwks_uri()).await;
    let x = jwk_bytes(&jwks["keys"][0], "x");
    let input = format!("{}.{}", pieces[0], pieces[1]);
    UnparsedPublicKey::new(&signature::ED25519, x)
        .verify(input.as_bytes(), &decode(pieces[2]))
        .expect("verifies");
}

#[tokio::test]
async fn raw_jwks_are_appended_after_generated_keys() {
    let provider = MockProvider::start().await.expect("start");
    let raw = json!({"kty": "RSA", "kid": "weak", "use": "enc", "n": "AQ", "e": "AQAB"});

    provider.publish_raw_jwk(raw.clone());

    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    assert_eq!(jwks["keys"][1], raw);
    provider.retire_key("weak");
    let jwks = get_json(&provider.jwks_uri()).await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn discovery_issuer_can_be_overridden_and_restored() {
    let provider = MockProvider::start().await.expect("start");

    provider.set_discovery_issuer(Some("https://evil.example".to_owned()));

    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["issuer"], "https://evil.example");
    assert_eq!(doc["jwks_uri"], provider.jwks_uri());
    let claims = parts(&provider.token().sign()).1;
    assert_eq!(claims["iss"], provider.issuer());
    provider.set_discovery_issuer(None);
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["issuer"], provider.issuer());
}

#[tokio::test]
async fn token_builder_edits_claims_and_headers() {
    let provider = MockProvider::start().await.expect("start");

    let token = provider
        .token()
        .sub("bob")
        .audience("api-a")
        .audience("api-b")
        .scope("read write")
        .claim("email", json!("bob@example.com"))
        .remove_claim("iss")
        .header("typ", json!("at+jwt"))
        .remove_header("kid")
        .issued_at(1_000)
        .sign();

    let (header, claims, _, _) = parts(&token);
    assert_eq!(header, json!({"alg": "RS256", "typ": "at+jwt"}));
    assert_eq!(
        claims,
        json!({
            "sub": "bob",
            "aud": ["api-a", "api-b"],
            "scope": "read write",
            "email": "bob@example.com",
            "iat": 1_000,
            "exp": 4_600,
        })
    );
}

#[tokio::test]
async fn expires_in_counts_from_iat_and_may_be_negative() {
    let provider = MockProvider::start().await.expect("start");

    let token = provider.token().issued_at(10_000).expires_in(-60).sign();

    let claims = parts(&token).1;
    assert_eq!(claims["iat"], 10_000);
    assert_eq!(claims["exp"], 9_940);
}

#[tokio::test]
async fn hits_count_requests_per_endpoint_including_faulted_ones() {
    let provider = MockProvider::start().await.expect("start");
    let http = client();

    get_json(&provider.discovery_url()).await;
    get_json(&provider.jwks_uri()).await;
    get_json(&provider.jwks_uri()).await;
    provider.set_fault(Endpoint::Jwks, Fault::Status(500));
    let _ = http
        .get(provider.jwks_uri())
        .send()
        .await
        .expect("answered");

    assert_eq!(provider.hits(Endpoint::Discovery), 1);
    assert_eq!(provider.hits(Endpoint::Jwks), 3);
    provider.reset_hits();
    assert_eq!(provider.hits(Endpoint::Discovery), 0);
    assert_eq!(provider.hits(Endpoint::Jwks), 0);
}

#[tokio::test]
async fn fault_status_answers_that_status_with_a_json_error() {
    let provider = MockProvider::start().await.expect("start");

    provider.set_fault(Endpoint::Discovery, Fault::Status(500));

    let response = client()
        .get(provider.discovery_url())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"], "mock_fault");
    get_json(&provider.jwks_uri()).await;
}

#[tokio::test]
async fn fault_empty_answers_that_status_without_a_body() {
    let provider = MockProvider::start().await.expect("start");
    for (code, challenge) in [(401, Some(r#"Bearer error="invalid_token""#)), (503, None)] {
        provider.set_fault(Endpoint::Userinfo, Fault::Empty(code));
        let response = client()
            .get(format!("{}/userinfo", provider.issuer()))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), code);
        let sent = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(sent.as_deref(), challenge);
        assert!(response.bytes().await.expect("body").is_empty());
    }
}

#[tokio::test]
async fn fault_retry_after_sends_the_header_with_the_status() {
    let provider = MockProvider::start().await.expect("start");
    for (wait, sent) in [("120", Some("120")), ("bad\nvalue", None)] {
        provider.set_fault(Endpoint::Token, Fault::RetryAfter(429, wait.to_owned()));
        let response = client()
            .post(format!("{}/token", provider.issuer()))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 429);
        let header = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(header.as_deref(), sent);
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"], "mock_fault");
    }
}

#[tokio::test]
async fn fault_down_on_all_endpoints_fails_new_and_pooled_connections() {
    let provider = MockProvider::start().await.expect("start");
    let pooled = client();
    pooled
        .get(provider.discovery_url())
        .send()
        .await
        .expect("up at first");

    provider.set_fault_all(Fault::Down);

    assert!(client().get(provider.jwks_uri()).send().await.is_err());
    assert!(pooled.get(provider.jwks_uri()).send().await.is_err());
    assert_eq!(
        provider.hits(Endpoint::Jwks),
        0,
        "dropped requests are not counted"
    );
    provider.set_fault_all(Fault::None);
    get_json(&provider.jwks_uri()).await;
}

#[tokio::test]
async fn fault_down_on_one_endpoint_leaves_the_others_up() {
    let provider = MockProvider::start().await.expect("start");
    let http = client();

    provider.set_fault(Endpoint::Jwks, Fault::Down);

    assert!(http.get(provider.jwks_uri()).send().await.is_err());
    let discovery = http
        .get(provider.discovery_url())
        .send()
        .await
        .expect("discovery is up");
    assert!(discovery.status().is_success());
}

#[tokio::test]
async fn fault_slow_answers_correctly_after_the_delay() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_fault(Endpoint::Jwks, Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();

    let jwks = get_json(&provider.jwks_uri()).await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(published_kids(&jwks), vec![provider.current_kid()]);
}

#[tokio::test]
async fn fault_hang_never_answers() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_fault(Endpoint::Discovery, Fault::Hang);

    let result = reqwest::Client::new()
        .get(provider.discovery_url())
        .timeout(Duration::from_millis(200))
        .send()
        .await;

    assert!(result.expect_err("hangs").is_timeout());
    assert_eq!(provider.hits(Endpoint::Discovery), 1);
}

#[tokio::test]
async fn fault_garbage_answers_200_with_a_non_json_body() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_fault(Endpoint::Jwks, Fault::Garbage);

    let response = client()
        .get(provider.jwks_uri())
        .send()
        .await
        .expect("answered");

    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.expect("body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn fault_truncated_sends_the_first_half_of_the_real_document() {
    let provider = MockProvider::start().await.expect("start");
    let full = client()
        .get(provider.discovery_url())
        .send()
        .await
        .expect("answered")
        .bytes()
        .await
        .expect("body");
    provider.set_fault(Endpoint::Discovery, Fault::Truncated);

    let response = client()
        .get(provider.discovery_url())
        .send()
        .await
        .expect("answered");

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    let cut = response.bytes().await.expect("body");
    assert_eq!(cut.len(), full.len() / 2);
    assert!(full.starts_with(&cut));
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
}

#[tokio::test]
async fn shutdown_closes_the_port_and_releases_hanging_requests() {
    let provider = MockProvider::start().await.expect("start");
    provider.set_fault(Endpoint::Jwks, Fault::Hang);
    let hanging = tokio::spawn(client().get(provider.jwks_uri()).send());
    while provider.hits(Endpoint::Jwks) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    provider.shutdown().await;

    let released = hanging.await.expect("task").expect("answered");
    assert_eq!(released.status().as_u16(), 503);
    assert!(
        tokio::net::TcpStream::connect(provider.addr())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_server() {
    let provider = MockProvider::start().await.expect("start");
    let addr = provider.addr();
    let clone = provider.clone();
    drop(provider);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "clone alive"
    );

    drop(clone);

    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "server still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
