//! Against a real, certified OpenID provider: the npm package `oidc-provider` on 127.0.0.1
//! (tests/oidc-provider). These tests drive the provider's own flows headlessly and check that
//! what it issues passes this crate's validation: the authorization code flow with PKCE, refresh,
//! the device flow, key rotation, and RP-initiated logout.
//!
//! Skipped (with a message) when `tests/oidc-provider/node_modules` is missing, unless `CI` is set.

use std::time::Duration;

use oidc_auth::{ClaimRule, ClaimValue, ErrorKind, OidcAuth, OidcConfig, Policy};
use oidc_auth_tests::real_provider::{
    ALL_SCOPES, API_AUDIENCE, Client, DEVICE_CODE_GRANT, LoginResult, Pkce, RealProvider, USERNAME,
    jwt_header, jwt_payload, random_token,
};
use serde_json::{Value, json};
use url::Url;

const REDIRECT: &str = "http://localhost:53100/callback";
const LOGGED_OUT: &str = "http://localhost:53100/logged-out";

/// What `#[oidc::required(scopes = "admin", claims(groups = "admins"))]` generates.
struct Admins;
impl Policy for Admins {
    const SCOPES: &'static [&'static str] = &["admin"];
    const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new("groups", &[ClaimValue::Str("admins")])];
}

fn auth_for(p: &RealProvider, client: Client) -> OidcAuth {
    let config = OidcConfig::builder()
        .discovery_url(p.discovery_url())
        .client_id(client.id())
        .audience(API_AUDIENCE)
        .build()
        .expect("valid configuration");
    OidcAuth::new(config)
}

/// The whole browser flow for `client`: authorize, sign in, consent, exchange the code.
async fn code_flow(p: &RealProvider, client: Client, redirect_uri: &str, scope: &str) -> Value {
    let pkce = Pkce::new();
    let state = random_token(12);
    let redirect = p
        .login(&p.authorize_url(client, redirect_uri, scope, &state, &pkce))
        .await;
    let location = redirect.location();
    assert!(
        location.as_str().starts_with(redirect_uri),
        "redirected to {location}"
    );
    assert_eq!(redirect.state().as_deref(), Some(state.as_str()));
    assert_eq!(redirect.param("iss").as_deref(), Some(p.issuer()));
    let code = redirect.code();
    let (status, tokens) = p
        .token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "token exchange failed: {tokens}");
    tokens
}

fn field<'a>(tokens: &'a Value, name: &str) -> &'a str {
    tokens[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {tokens}"))
}

/// (a) Public client, authorization code + PKCE: the JWT access token validates with
/// `aud = api`, carries the `admin` scope and the `groups` claim, and passes the admin policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_code_flow_token_validates() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let tokens = code_flow(&p, Client::Public, REDIRECT, ALL_SCOPES).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let access = field(&tokens, "access_token");
    assert_eq!(jwt_header(access)["typ"], "at+jwt");

    let auth = auth_for(&p, Client::Public);
    let token = auth
        .validate(access)
        .await
        .expect("the access token validates");
    assert_eq!(token.issuer(), p.issuer());
    assert_eq!(token.sub(), USERNAME);
    assert_eq!(token.audiences(), [API_AUDIENCE.to_owned()]);
    assert!(token.has_scope("admin"), "scope: {:?}", token.scope());
    assert!(token.has_scope("openid"));
    assert_eq!(token.groups(), ["admins"]);
    assert_eq!(token.preferred_username(), Some("alice"));
    assert_eq!(token.email(), Some("alice@example.com"));
    assert_eq!(token.name(), Some("Alice van der Berg"));
    assert_eq!(token.family_name(), Some("van der Berg"));
    assert_eq!(token.claim("client_id"), Some(&json!("public-client")));

    let header = format!("Bearer {access}");
    auth.authorize::<Admins>([header.as_bytes()])
        .await
        .expect("alice passes the admin policy");

    // The ID token carries the profile claims too, for the client.
    let id = jwt_payload(field(&tokens, "id_token"));
    assert_eq!(id["aud"], "public-client");
    assert_eq!(id["given_name"], "Alice");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["groups"], json!(["admins"]));
}

/// (a) The confidential client (client_secret_basic) on another loopback host and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_client_code_flow_on_any_loopback_port() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let redirect = "http://127.0.0.1:61234/auth/v2/callback";
    let tokens = code_flow(
        &p,
        Client::Confidential,
        redirect,
        "openid profile email admin",
    )
    .await;
    let auth = auth_for(&p, Client::Confidential);
    let token = auth
        .validate(field(&tokens, "access_token"))
        .await
        .expect("the access token validates");
    assert!(token.has_scope("admin"));
    assert!(!token.has_scope("groups"));
    assert_eq!(
        token.claim("client_id"),
        Some(&json!("confidential-client"))
    );

    // A token without the admin scope fails the admin policy with insufficient_scope.
    let tokens = code_flow(&p, Client::Confidential, redirect, "openid groups").await;
    let access = field(&tokens, "access_token");
    let token = auth.validate(access).await.expect("validates");
    assert!(!token.has_scope("admin"));
    let header = format!("Bearer {access}");
    let err = auth
        .authorize::<Admins>([header.as_bytes()])
        .await
        .expect_err("no admin scope");
    assert_eq!(err.code(), Some("insufficient_scope"));
}

/// The provider enforces what the library relies on: PKCE, and a registered redirect URI path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_enforces_pkce_and_redirect_uris() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    // A wrong code_verifier: invalid_grant.
    let pkce = Pkce::new();
    let redirect = p
        .login(&p.authorize_url(Client::Public, REDIRECT, "openid", "s", &pkce))
        .await;
    let (status, body) = p
        .token(
            Client::Public,
            &[
                ("grant_type", "authorization_code"),
                ("code", &redirect.code()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &Pkce::new().verifier),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // No code_challenge at all: the provider refuses (redirecting the error to the client).
    let mut url = Url::parse(&p.endpoints().authorization).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", "public-client")
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "s");
    let result = p.login(url.as_str()).await;
    assert_eq!(result.error().as_deref(), Some("invalid_request"));

    // An unregistered path is not a redirect target: the provider shows its error page.
    let result = p
        .login(&p.authorize_url(
            Client::Public,
            "http://localhost:53100/elsewhere",
            "openid",
            "s",
            &Pkce::new(),
        ))
        .await;
    assert!(
        matches!(result, LoginResult::Page { status: 400, .. }),
        "{result:?}"
    );
}

/// (b) The refresh grant returns a new access token that validates too; the public client's
/// refresh token rotates and the used one is then rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_grant_returns_a_valid_new_access_token() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let auth = auth_for(&p, Client::Public);
    let tokens = code_flow(&p, Client::Public, REDIRECT, ALL_SCOPES).await;
    let first = field(&tokens, "access_token");
    let refresh = field(&tokens, "refresh_token");
    auth.validate(first).await.expect("first token validates");

    let (status, renewed) = p
        .token(
            Client::Public,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    let second = field(&renewed, "access_token");
    assert_ne!(first, second);
    let token = auth
        .validate(second)
        .await
        .expect("refreshed token validates");
    assert!(token.has_scope("admin"));
    assert_eq!(token.groups(), ["admins"]);
    assert_ne!(
        jwt_payload(first)["jti"],
        jwt_payload(second)["jti"],
        "a new token, not the old one"
    );

    // Public clients get a rotated refresh token; reusing the old one fails.
    let rotated = field(&renewed, "refresh_token");
    assert_ne!(rotated, refresh);
    let (status, body) = p
        .token(
            Client::Public,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The confidential client refreshes with its secret.
    let tokens = code_flow(&p, Client::Confidential, REDIRECT, ALL_SCOPES).await;
    let (status, renewed) = p
        .token(
            Client::Confidential,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", field(&tokens, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    auth_for(&p, Client::Confidential)
        .validate(field(&renewed, "access_token"))
        .await
        .expect("refreshed confidential token validates");
}

/// (c) Device flow: start at the device endpoint, approve on the provider's pages, poll to a
/// token that validates; a denied code polls to `access_denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approve_and_deny() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    for client in [Client::Public, Client::Confidential] {
        let start = p.device_authorization(client, ALL_SCOPES).await;
        let device_code = field(&start, "device_code");
        let user_code = field(&start, "user_code");
        assert!(field(&start, "verification_uri").starts_with(p.issuer()));
        assert!(field(&start, "verification_uri_complete").contains("user_code="));
        assert!(start["expires_in"].as_u64().is_some_and(|s| s > 0));

        // Before approval: authorization_pending.
        let (status, body) = p
            .token(
                client,
                &[
                    ("grant_type", DEVICE_CODE_GRANT),
                    ("device_code", device_code),
                ],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("authorization_pending")),
            "{body}"
        );

        p.approve_device(user_code).await;
        let (status, tokens) = p.poll_device(client, device_code).await;
        assert_eq!(status, 200, "{tokens}");
        let token = auth_for(&p, client)
            .validate(field(&tokens, "access_token"))
            .await
            .expect("the device flow token validates");
        assert_eq!(token.sub(), USERNAME);
        assert!(token.has_scope("admin"));
        assert!(tokens["refresh_token"].is_string());
    }

    let start = p.device_authorization(Client::Public, "openid admin").await;
    p.deny_device(field(&start, "user_code")).await;
    let (status, body) = p
        .poll_device(Client::Public, field(&start, "device_code"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied")),
        "{body}"
    );
}

/// (d) Key rotation at the provider: tokens issued afterwards carry a new `kid` that was not in
/// the JWKS the validator had cached; they validate after one refetch. Old tokens still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_provider() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let auth = auth_for(&p, Client::Public);
    // The same validator with the shortest refetch cooldown, and one with a long cooldown, to
    // follow a second rotation right after the first.
    let with_cooldown = |cooldown: Duration| {
        OidcAuth::new(
            OidcConfig::builder()
                .discovery_url(p.discovery_url())
                .client_id(Client::Public.id())
                .audience(API_AUDIENCE)
                .jwks_refetch_cooldown(cooldown)
                .build()
                .expect("valid configuration"),
        )
    };
    let quick = with_cooldown(Duration::from_secs(1));
    let slow = with_cooldown(Duration::from_secs(600));
    let tokens = code_flow(&p, Client::Public, REDIRECT, ALL_SCOPES).await;
    let before = field(&tokens, "access_token");
    let old_kid = jwt_header(before)["kid"].as_str().expect("kid").to_owned();
    for validator in [&auth, &quick, &slow] {
        validator
            .validate(before)
            .await
            .expect("validates before rotation");
    }

    let rotated = p.rotate_keys().await;
    assert_eq!(rotated.previous, old_kid);
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(
        published_kids(&p).await,
        [rotated.kid.clone(), old_kid.clone()]
    );

    // The refresh token issued before rotation still works, and the new tokens use the new key.
    let (status, renewed) = p
        .token(
            Client::Public,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", field(&tokens, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    let after = field(&renewed, "access_token");
    assert_eq!(jwt_header(after)["kid"], rotated.kid.as_str());
    assert_eq!(
        jwt_header(field(&renewed, "id_token"))["kid"],
        rotated.kid.as_str()
    );
    let token = auth
        .validate(after)
        .await
        .expect("validates after rotation");
    assert!(token.has_scope("admin"));
    for validator in [&quick, &slow] {
        validator
            .validate(after)
            .await
            .expect("validates after rotation");
    }
    auth.validate(before)
        .await
        .expect("the previous key is still published");

    // A second rotation right away: a validator that has just refetched for an unknown kid waits
    // out its cooldown before fetching again, so the third key is not yet known to the one with
    // a long cooldown; the one whose one-second cooldown has passed refetches and accepts it.
    let again = p.rotate_keys().await;
    assert_eq!(again.previous, rotated.kid);
    assert_eq!(
        published_kids(&p).await,
        [again.kid.clone(), rotated.kid.clone()]
    );
    let tokens = code_flow(&p, Client::Public, REDIRECT, ALL_SCOPES).await;
    let third = field(&tokens, "access_token");
    assert_eq!(jwt_header(third)["kid"], again.kid.as_str());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    quick
        .validate(third)
        .await
        .expect("third key after a second refetch");
    let err = slow
        .validate(third)
        .await
        .expect_err("no second refetch within the cooldown");
    assert_eq!(err.kind(), ErrorKind::InvalidToken, "{err}");
}

async fn published_kids(p: &RealProvider) -> Vec<String> {
    p.jwks().await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// (e) RP-initiated logout: with a session, the logout form is confirmed and the provider
/// redirects to the registered post_logout_redirect_uri with the state; an unregistered one is
/// refused by the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_redirects_to_registered_uri() {
    let Some(p) = RealProvider::start().await else {
        return;
    };
    let browser = p.browser();
    let pkce = Pkce::new();
    let redirect = browser
        .login(&p.authorize_url(Client::Public, REDIRECT, ALL_SCOPES, "s", &pkce))
        .await;
    assert_eq!(browser.actions(), ["login", "consent"]);
    let (status, tokens) = p
        .token(
            Client::Public,
            &[
                ("grant_type", "authorization_code"),
                ("code", &redirect.code()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = field(&tokens, "id_token");

    let end_session = |post_logout: &str, state: &str| {
        let mut url = Url::parse(&p.endpoints().end_session).expect("end session URL");
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", post_logout)
            .append_pair("state", state);
        url.to_string()
    };

    // Unregistered: the provider's error page, no redirect.
    let refused = browser
        .logout(&end_session("http://localhost:53100/evil", "x"))
        .await;
    match &refused {
        LoginResult::Page { status, body, .. } => {
            assert_eq!(*status, 400);
            assert!(
                body.contains("post_logout_redirect_uri not registered"),
                "{body}"
            );
        }
        other => panic!("an unregistered URI must not be redirected to: {other:?}"),
    }

    let done = browser.logout(&end_session(LOGGED_OUT, "bye-state")).await;
    assert_eq!(browser.actions().last(), Some(&"logout confirm"));
    let location = done.location();
    assert_eq!(
        location.origin(),
        Url::parse(LOGGED_OUT).expect("url").origin()
    );
    assert_eq!(location.path(), "/logged-out");
    assert_eq!(done.state().as_deref(), Some("bye-state"));

    // The session is gone: the same browser has to sign in again.
    let again = browser
        .login(&p.authorize_url(Client::Public, REDIRECT, "openid", "t", &Pkce::new()))
        .await;
    assert!(again.param("code").is_some());
    assert_eq!(
        browser.actions()[3..],
        ["login", "consent"],
        "{:?}",
        browser.actions()
    );

    // Without a session, with client_id instead of id_token_hint: the provider auto-submits its
    // confirmation and redirects as well.
    let mut url = Url::parse(&p.endpoints().end_session).expect("end session URL");
    url.query_pairs_mut()
        .append_pair("client_id", "confidential-client")
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:53105/")
        .append_pair("state", "s2");
    let stranger = p.browser();
    let done = stranger.logout(url.as_str()).await;
    assert_eq!(stranger.actions(), ["auto-submit"]);
    assert_eq!(done.location().as_str(), "http://127.0.0.1:53105/?state=s2");
}
