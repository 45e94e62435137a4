//! The [`MockProvider`] controls of the OpenID flows: the user and client, switches for the
//! authorization, token, device and userinfo endpoints, and what those endpoints received.

use std::collections::HashMap;

use serde_json::Value;

use super::fault::Endpoint;
use super::op::{Client, DeviceStatus, JsonTweak, OpState, QueryTweak, User};
use super::provider::MockProvider;

impl MockProvider {
    /// The URL of `endpoint`: the issuer followed by its path (`/authorize`, `/token`, ...).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::Endpoint;
    ///
    /// assert_eq!(provider.endpoint_url(Endpoint::Token), format!("{}/token", provider.issuer()));
    /// # }
    /// ```
    #[must_use]
    pub fn endpoint_url(&self, endpoint: Endpoint) -> String {
        self.shared().url(endpoint)
    }

    /// Sets the user who is logged in, without any prompt, at `/authorize`, and who approves
    /// device grants: `sub` plus `claims` (a JSON object; its own `sub`, if any, is ignored, and
    /// anything else than an object means no claims). Codes and device grants already handed
    /// out keep the user they were issued for; a refresh of a grant of the same `sub` answers
    /// with the claims set here, as a provider answers with the user's claims as they are now.
    ///
    /// The default is `alice` with `preferred_username` `alice`, `given_name` `Alice`,
    /// `family_name` `van der Berg`, `name` `Alice van der Berg`, `email` `alice@example.com` and
    /// `email_verified` `true`. `/userinfo` answers every claim; ID tokens carry them too; access
    /// tokens carry all but `name`, `given_name`, `family_name` and `middle_name`.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use serde_json::json;
    ///
    /// provider.set_user("bob", json!({"preferred_username": "bob", "groups": ["admins"]}));
    /// # }
    /// ```
    pub fn set_user(&self, sub: &str, claims: Value) {
        self.shared().op().user = User::new(sub, claims);
    }

    /// Registers the only client `/token` and `/device` accept (and `/authorize` requires as
    /// `client_id`). With a secret, the client must authenticate with HTTP Basic
    /// (`client_secret_basic`) or the form field `client_secret` (`client_secret_post`);
    /// otherwise, or for an unknown client, the answer is `401 {"error": "invalid_client"}`.
    /// Without this call any `client_id` is accepted and no secret is needed.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_client("my-app", Some("s3cret"));
    /// # }
    /// ```
    pub fn set_client(&self, client_id: &str, secret: Option<&str>) {
        self.shared().op().client = Some(Client {
            id: client_id.to_owned(),
            secret: secret.map(str::to_owned),
        });
    }

    /// Sets the `aud` of the access tokens `/token` mints; by default it is the client's id.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_access_token_audience("my-api");
    /// # }
    /// ```
    pub fn set_access_token_audience(&self, aud: &str) {
        self.shared().op().access_token_audience = Some(aud.to_owned());
    }

    /// Sets the lifetime of minted access and ID tokens (`expires_in`, and `exp - iat`) in
    /// seconds; default 300. Negative values mint tokens that are already expired.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_access_token_expires_in(5);
    /// # }
    /// ```
    pub fn set_access_token_expires_in(&self, secs: i64) {
        self.shared().op().access_token_expires_in = secs;
    }

    /// Sets `refresh_expires_in` of token answers and the lifetime of new refresh tokens, in
    /// seconds; default 1800. `0` means no stated expiry, as Keycloak's offline tokens; a
    /// negative value makes new refresh tokens unusable at once.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_refresh_expires_in(0);
    /// # }
    /// ```
    pub fn set_refresh_expires_in(&self, secs: i64) {
        self.shared().op().refresh_expires_in = secs;
    }

    /// Whether the authorization response carries `iss` (RFC 9207) and discovery says
    /// `authorization_response_iss_parameter_supported`; default `true`. To send a wrong `iss`,
    /// or none while discovery still claims support, use
    /// [`set_authorize_response_tweak`](Self::set_authorize_response_tweak).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_iss_in_authorization_response(false);
    /// # }
    /// ```
    pub fn set_iss_in_authorization_response(&self, enabled: bool) {
        self.shared().op().iss_in_authorization_response = enabled;
    }

    /// Turns the device flow on or off (default on). Off, discovery has no
    /// `device_authorization_endpoint` and `/device` answers 404.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_device_enabled(false);
    /// # }
    /// ```
    pub fn set_device_enabled(&self, enabled: bool) {
        self.shared().op().device_enabled = enabled;
    }

    /// Whether the discovery document advertises the revocation endpoint (default: yes). The
    /// endpoint itself keeps answering.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_revocation_enabled(false);
    /// # }
    /// ```
    pub fn set_revocation_enabled(&self, enabled: bool) {
        self.shared().op().revocation_enabled = enabled;
    }

    /// Makes `/authorize` redirect with `error=<value>` (plus `state` and `iss`) instead of a
    /// code, as when the user denies consent; `None` restores codes.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_authorize_error(Some("access_denied".to_owned()));
    /// # }
    /// ```
    pub fn set_authorize_error(&self, error: Option<String>) {
        self.shared().op().authorize_error = error;
    }

    /// Lets a test rewrite the query parameters of the authorization response (`code`,
    /// `state`, `iss` or `error`) before the redirect is sent: a wrong `iss`, a missing one, a
    /// foreign `state`... The tweak runs without any lock held. `None` removes it.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use std::sync::Arc;
    ///
    /// provider.set_authorize_response_tweak(Some(Arc::new(|pairs: &mut Vec<(String, String)>| {
    ///     for (name, value) in pairs.iter_mut() {
    ///         if name == "iss" {
    ///             *value = "https://evil.example".to_owned();
    ///         }
    ///     }
    /// })));
    /// # }
    /// ```
    pub fn set_authorize_response_tweak(&self, tweak: Option<QueryTweak>) {
        self.shared().op().authorize_response_tweak = tweak;
    }

    /// Whether `/token` checks PKCE for authorization codes (default `true`): the code must have
    /// been requested with an S256 `code_challenge`, and `code_verifier` (43 to 128 unreserved
    /// characters) must hash to it, else `invalid_grant`. Switch off to test what a relying
    /// party does against a provider that does not check.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_check_pkce(false);
    /// # }
    /// ```
    pub fn set_check_pkce(&self, enabled: bool) {
        self.shared().op().check_pkce = enabled;
    }

    /// Lets a test alter the ID token claims before signing (wrong `nonce` or `aud`, missing
    /// `sub`, ...). The tweak runs without any lock held. `None` removes it.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use std::sync::Arc;
    ///
    /// provider.set_id_token_tweak(Some(Arc::new(|claims: &mut serde_json::Map<_, _>| {
    ///     claims.remove("sub");
    /// })));
    /// # }
    /// ```
    pub fn set_id_token_tweak(&self, tweak: Option<JsonTweak>) {
        self.shared().op().id_token_tweak = tweak;
    }

    /// Lets a test alter the discovery document before it is served (an endpoint moved to
    /// another host or scheme, a field removed, ...). The tweak runs without any lock held.
    /// `None` removes it.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use std::sync::Arc;
    ///
    /// provider.set_discovery_tweak(Some(Arc::new(|doc: &mut serde_json::Map<_, _>| {
    ///     doc.insert("jwks_uri".into(), "http://keys.example/jwks".into());
    /// })));
    /// # }
    /// ```
    pub fn set_discovery_tweak(&self, tweak: Option<JsonTweak>) {
        self.shared().op().discovery_tweak = tweak;
    }

    /// Signs ID tokens with the key `kid` instead of the current key, as
    /// [`TokenBuilder::kid`](super::TokenBuilder::kid) does (an unknown kid is written to the
    /// header but signed with the current key). `None` restores the current key.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let unpublished = provider.add_key(SigningAlg::RS256);
    /// provider.retire_key(&unpublished);
    /// provider.set_id_token_kid(Some(unpublished));
    /// # }
    /// ```
    pub fn set_id_token_kid(&self, kid: Option<String>) {
        self.shared().op().id_token_kid = kid;
    }

    /// Lets a test rewrite the whole JSON answer of a successful token request (replace the
    /// `id_token` with an unsigned one, drop `refresh_token`, ...). The tweak runs without any
    /// lock held. `None` removes it.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// use std::sync::Arc;
    ///
    /// provider.set_token_response_tweak(Some(Arc::new(|answer: &mut serde_json::Map<_, _>| {
    ///     answer.remove("refresh_token");
    /// })));
    /// # }
    /// ```
    pub fn set_token_response_tweak(&self, tweak: Option<JsonTweak>) {
        self.shared().op().token_response_tweak = tweak;
    }

    /// Sets `expires_in` of new device authorizations, in seconds; default 600. With `1` the
    /// device code expires a second after it was handed out, and polling then answers
    /// `expired_token`. With `0` the answer states an `expires_in` of 0, which a server
    /// relaying it refuses (503, so that its clients use the browser: they could never poll).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_device_expires_in(1);
    /// # }
    /// ```
    pub fn set_device_expires_in(&self, secs: u64) {
        self.shared().op().device_expires_in = secs;
    }

    /// Sets the `interval` of new device authorizations, in seconds; default `Some(5)`. `None`
    /// leaves the field out of the answer, and then 5 seconds are enforced (RFC 8628). The
    /// interval counts from the device authorization to the first poll and between polls; a
    /// poll that comes sooner is answered `slow_down` and grows that device's interval by 5
    /// seconds. `Some(0)` lets tests poll without sleeping.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_device_interval(Some(0));
    /// # }
    /// ```
    pub fn set_device_interval(&self, secs: Option<u64>) {
        self.shared().op().device_interval = secs;
    }

    /// Approves the pending device authorization with this user code (case and dashes are
    /// ignored) for the current user ([`set_user`](Self::set_user)); the next poll gets tokens.
    /// Returns whether a pending authorization with that code was found.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// if let Some((_device_code, user_code)) = provider.last_device_code() {
    ///     assert!(provider.approve_device(&user_code));
    /// }
    /// # }
    /// ```
    pub fn approve_device(&self, user_code: &str) -> bool {
        let mut op = self.shared().op();
        let user = op.user.clone();
        answer_device(&mut op, user_code, DeviceStatus::Approved(user))
    }

    /// Denies the pending device authorization with this user code; polling then answers
    /// `access_denied`. Returns whether a pending authorization with that code was found.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// if let Some((_, user_code)) = provider.last_device_code() {
    ///     provider.deny_device(&user_code);
    /// }
    /// # }
    /// ```
    pub fn deny_device(&self, user_code: &str) -> bool {
        let mut op = self.shared().op();
        answer_device(&mut op, user_code, DeviceStatus::Denied)
    }

    /// The `(device_code, user_code)` of the latest device authorization `/device` handed out.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let (device_code, user_code) = provider.last_device_code().expect("a device flow ran");
    /// assert_eq!(user_code.len(), 9); // "ABCD-EFGH"
    /// # }
    /// ```
    #[must_use]
    pub fn last_device_code(&self) -> Option<(String, String)> {
        self.shared().op().last_device.clone()
    }

    /// Replaces the `/userinfo` answer for every valid access token (for example with another
    /// `sub`); `None` restores the user's own claims. Unknown tokens still get 401.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.set_userinfo_override(Some(serde_json::json!({"sub": "mallory"})));
    /// # }
    /// ```
    pub fn set_userinfo_override(&self, answer: Option<Value>) {
        self.shared().op().userinfo_override = answer;
    }

    /// The query parameters of the latest `/authorize` request (valid or not).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let request = provider.last_authorize_request().expect("a login ran");
    /// assert_eq!(request.get("code_challenge_method").map(String::as_str), Some("S256"));
    /// # }
    /// ```
    #[must_use]
    pub fn last_authorize_request(&self) -> Option<HashMap<String, String>> {
        self.shared().op().last_authorize.clone()
    }

    /// The form fields of the latest `/token` request (valid or not). HTTP Basic credentials
    /// are not included.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let form = provider.last_token_request().expect("a token request ran");
    /// assert!(form.contains_key("code_verifier"));
    /// # }
    /// ```
    #[must_use]
    pub fn last_token_request(&self) -> Option<HashMap<String, String>> {
        self.shared().op().last_token.clone()
    }

    /// The form of the latest `/revoke` request (RFC 7009).
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let form = provider.last_revocation_request().expect("a revocation ran");
    /// assert_eq!(form.get("token_type_hint").map(String::as_str), Some("refresh_token"));
    /// # }
    /// ```
    #[must_use]
    pub fn last_revocation_request(&self) -> Option<HashMap<String, String>> {
        self.shared().op().last_revocation.clone()
    }

    /// The query parameters of the latest `/logout` (end-session) request.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// let request = provider.last_end_session_request().expect("a logout ran");
    /// let target = request.get("post_logout_redirect_uri");
    /// # }
    /// ```
    #[must_use]
    pub fn last_end_session_request(&self) -> Option<HashMap<String, String>> {
        self.shared().op().last_end_session.clone()
    }

    /// How many refresh token grants succeeded.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// assert_eq!(provider.refresh_count(), 1, "concurrent requests share one refresh");
    /// # }
    /// ```
    #[must_use]
    pub fn refresh_count(&self) -> usize {
        self.shared().op().refresh_count
    }

    /// Revokes every refresh token issued so far, as a provider-side logout or an
    /// administrator would; using one then answers `invalid_grant`.
    ///
    /// ```no_run
    /// # async fn f(provider: oidc_auth::testing::MockProvider) {
    /// provider.revoke_refresh_tokens();
    /// # }
    /// ```
    pub fn revoke_refresh_tokens(&self) {
        let mut op = self.shared().op();
        let families: Vec<u64> = op.refresh_tokens.values().map(|e| e.family).collect();
        op.revoked_families.extend(families);
    }
}

/// Sets the answer of the pending device authorization with this user code.
fn answer_device(op: &mut OpState, user_code: &str, answer: DeviceStatus) -> bool {
    match op.device_by_user_code(user_code) {
        Some(device) if matches!(device.status, DeviceStatus::Pending) => {
            device.status = answer;
            true
        }
        _ => false,
    }
}
