//! `POST /auth/v2/token`: the code, refresh and device-code grants, with the hyphenated field
//! names py-oidc-auth-client sends (`refresh-token`, `device-code`) and the standard ones.

use serde::Deserialize;
use serde_json::Value;

use super::{EndpointResponse, parse_form, token_json};
use crate::auth::OidcAuth;
use crate::broker::ExchangeRequest;
use crate::error::{AuthError, ErrorKind};

pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

#[derive(Deserialize)]
struct TokenForm {
    /// The token-exchange fields, read only for that grant.
    #[serde(flatten)]
    exchange: ExchangeRequest,
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    state: Option<String>,
    #[serde(alias = "refresh-token")]
    refresh_token: Option<String>,
    #[serde(alias = "device-code")]
    device_code: Option<String>,
}

/// The form of a revocation request (RFC 7009 section 2.1). The hint goes to the provider;
/// in broker mode the kind of token is told by its shape.
#[derive(Deserialize)]
struct RevokeForm {
    token: Option<String>,
    token_type_hint: Option<String>,
}

/// The one grant a token request asks for, with its credential.
enum Grant {
    Code(String),
    Refresh(String),
    Device(String),
}

impl Grant {
    /// The grant of a form: exactly one credential (`code`, `refresh-token` or `device-code`,
    /// empty values counting as absent), and a `grant_type`, when one is sent, that names that
    /// credential's grant. py-oidc-auth-client sends `refresh-token` and `device-code` without
    /// a `grant_type`. A `grant_type` this server does not run is `unsupported_grant_type`, a
    /// form with no credential, two of them, or a `grant_type` naming another grant is
    /// `invalid_request`; either way before the provider is asked.
    fn of(
        grant_type: Option<&str>,
        code: Option<String>,
        refresh_token: Option<String>,
        device_code: Option<String>,
    ) -> Result<Self, AuthError> {
        if !matches!(
            grant_type,
            None | Some("authorization_code" | "refresh_token" | DEVICE_GRANT)
        ) {
            return Err(AuthError::oauth(
                "unsupported_grant_type",
                "the grant type is not supported",
            ));
        }
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        let mut sent = [
            present(code).map(Grant::Code),
            present(refresh_token).map(Grant::Refresh),
            present(device_code).map(Grant::Device),
        ]
        .into_iter()
        .flatten();
        let grant = match (sent.next(), sent.next()) {
            (Some(grant), None) => grant,
            (None, _) => {
                return Err(AuthError::oauth(
                    "invalid_request",
                    "send code, refresh-token or device-code",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(AuthError::oauth(
                    "invalid_request",
                    "send only one of code, refresh-token and device-code",
                ));
            }
        };
        if grant_type.is_some_and(|named| named != grant.grant_type()) {
            return Err(AuthError::oauth(
                "invalid_request",
                "the grant_type does not match the credential sent",
            ));
        }
        Ok(grant)
    }

    /// The `grant_type` that names this grant.
    fn grant_type(&self) -> &'static str {
        match self {
            Grant::Code(_) => "authorization_code",
            Grant::Refresh(_) => "refresh_token",
            Grant::Device(_) => DEVICE_GRANT,
        }
    }
}

impl OidcAuth {
    /// `POST /auth/v2/token` with a form body. A server wiring this by hand checks the body's
    /// type first with [`check_form_type`](crate::check_form_type), as the adapters do.
    ///
    /// The provider's refusal of the caller's grant (`invalid_grant`, `authorization_pending`,
    /// `slow_down`, ...) is 400 with its code at top level. A refusal of this server's own
    /// client (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`) is a
    /// misconfiguration, logged as an error and answered 502, as is a code exchange answered
    /// without an ID token; a busy provider (408, 429, 503, 504) is 503 with `Retry-After`.
    pub async fn token_endpoint(&self, form: &[u8]) -> Result<EndpointResponse, AuthError> {
        self.token_request(form, []).await
    }

    /// `POST /auth/v2/revoke` with a form body (RFC 7009): `token` and an optional
    /// `token_type_hint`. No `token` is 400 `invalid_request`. A server wiring this by hand
    /// checks the body's type first with [`check_form_type`](crate::check_form_type).
    ///
    /// In broker mode `token` is a broker refresh token, and its whole session ends (see the
    /// README's broker section); the answer is 200 `{}` whether or not the token was live. An
    /// access token (a JWT) is 400 `unsupported_token_type`: it is short-lived and checked
    /// without the store, so it cannot be revoked.
    ///
    /// Otherwise the client holds the provider's tokens, and the request goes to the provider's
    /// revocation endpoint with this server's client authentication: 200 `{}` when the provider
    /// accepts it, its error code when it refuses the token, 502 when it refuses this server's
    /// client (`invalid_client`, ...), 400 `unsupported_token_type` when it has no revocation
    /// endpoint, and 503 when it cannot be reached or is busy.
    pub async fn revoke_endpoint(&self, form: &[u8]) -> Result<EndpointResponse, AuthError> {
        let form: RevokeForm = parse_form(form)?;
        let token = form.token.unwrap_or_default();
        if token.is_empty() {
            return Err(AuthError::oauth("invalid_request", "`token` is required"));
        }
        match self.broker() {
            Some(_) if token.contains('.') => {
                return Err(AuthError::oauth(
                    "unsupported_token_type",
                    "access tokens are short-lived and cannot be revoked; revoke the refresh token",
                ));
            }
            Some(broker) => broker.revoke(self, &token).await?,
            None => self.provider_revoke(token, form.token_type_hint).await?,
        }
        Ok(EndpointResponse::ok(serde_json::json!({})))
    }

    /// `POST /auth/v2/token` with a form body and the request's `Authorization` header values
    /// (in order), which carry the client credentials of a token exchange (broker mode). More
    /// than one such header is 400 `invalid_request`: credentials are never picked from several.
    /// A form over 16 KiB is 413 `invalid_request`, as the adapters answer a body they stopped
    /// reading at that limit. A server wiring this by hand checks the body's type first with
    /// [`check_form_type`](crate::check_form_type), as the adapters do.
    pub async fn token_request<'a>(
        &self,
        form: &[u8],
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<EndpointResponse, AuthError> {
        let mut headers = authorization.into_iter();
        let authorization = headers.next();
        if headers.next().is_some() {
            return Err(AuthError::oauth(
                "invalid_request",
                "send one Authorization header",
            ));
        }
        let form: TokenForm = parse_form(form)?;
        let grant = form.grant_type.as_deref();
        if grant == Some(EXCHANGE_GRANT) {
            let Some(broker) = self.broker() else {
                return Err(AuthError::oauth(
                    "unsupported_grant_type",
                    "token exchange needs broker mode",
                ));
            };
            return broker
                .exchange(self, form.exchange, authorization)
                .await
                .map(EndpointResponse::ok);
        }
        let grant = Grant::of(grant, form.code, form.refresh_token, form.device_code)?;
        match grant {
            Grant::Code(code) => {
                self.code_grant(code, form.redirect_uri, form.code_verifier, form.state)
                    .await
            }
            Grant::Device(device_code) => match self.broker() {
                Some(broker) => self.broker_device_poll(broker, device_code).await,
                None => {
                    self.provider_grant(DEVICE_GRANT, "device_code", device_code)
                        .await
                }
            },
            Grant::Refresh(refresh_token) => match self.broker() {
                Some(broker) => broker
                    .refresh(self, &refresh_token)
                    .await
                    .map(EndpointResponse::ok),
                None => {
                    self.provider_grant("refresh_token", "refresh_token", refresh_token)
                        .await
                }
            },
        }
    }

    /// A device poll in broker mode: paced here (`slow_down`, `expired_token`), passed to the
    /// provider, and on success redeemed once and turned into a session.
    async fn broker_device_poll(
        &self,
        broker: &crate::broker::Broker,
        device_code: String,
    ) -> Result<EndpointResponse, AuthError> {
        let now = self.now();
        broker.pace_device_poll(&device_code, now)?;
        let granted = match self
            .provider_grant_answer(vec![
                ("grant_type", DEVICE_GRANT.to_owned()),
                ("device_code", device_code.clone()),
            ])
            .await
        {
            Ok(granted) => granted,
            Err(e) => {
                let e = device_poll_error(e);
                if e.code() == Some("slow_down") {
                    broker.device_slowed(&device_code, now, e.retry_after());
                }
                return Err(e);
            }
        };
        let answer = granted.answer();
        granted
            .finish(async {
                // An answer without an access token is no approval: the provider's fault (502), and
                // the device code stays unspent, so that a later poll can still complete the login.
                if answer
                    .get("access_token")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(AuthError::new(
                        ErrorKind::BadGateway,
                        "the identity provider sent no access token",
                    ));
                }
                broker.redeem_device_code(&device_code, now).await?;
                // The user's claims are read as at a code login: the access token's when it
                // validates here, then the ID token's when it validates (a device grant has no
                // nonce), and userinfo only when neither names the user.
                let identity = match answer.get("id_token").and_then(Value::as_str) {
                    Some(raw) => match self.validate_id_token_without_nonce(raw).await {
                        Ok(identity) => Some(identity),
                        Err(e) if e.kind() == ErrorKind::Unavailable => {
                            tracing::warn!(error = %e, "the ID token of a device grant cannot be checked now (the provider's keys are unavailable); the user's claims come from userinfo");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the ID token of a device grant is not valid; the user's claims come from userinfo");
                            None
                        }
                    },
                    None => None,
                };
                broker
                    .start_session(self, answer, identity, None)
                    .await
                    .map(EndpointResponse::ok)
            })
            .await
    }

    /// A refresh or device-code grant, passed to the provider. Its OAuth errors
    /// (`authorization_pending`, `slow_down`, `access_denied`, `expired_token`,
    /// `invalid_grant`) come back at top level of a 400 answer; a refusal of this server's
    /// client (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`) is 502, so the
    /// caller does not take it for a failure of its own grant. A device poll the provider
    /// cannot answer is `slow_down` (see [`device_poll_error`]).
    async fn provider_grant(
        &self,
        grant_type: &'static str,
        field: &'static str,
        value: String,
    ) -> Result<EndpointResponse, AuthError> {
        let lifetime = crate::clock::secs(self.config().refresh_token_lifetime);
        if field == "refresh_token" {
            let answer = self.shared_refresh(value.clone()).await?;
            return token_json(&answer, Some(&value), self.now(), lifetime)
                .map(EndpointResponse::ok);
        }
        let granted = self
            .provider_grant_answer(vec![("grant_type", grant_type.to_owned()), (field, value)])
            .await
            .map_err(device_poll_error)?;
        granted
            .finish(async {
                token_json(granted.answer(), None, self.now(), lifetime).map(EndpointResponse::ok)
            })
            .await
    }
}

/// A device poll the provider could not answer (busy, down, or this server's own limit on
/// outbound calls: 503) is `slow_down`, which RFC 8628 defines as "still pending, poll more
/// slowly": polling goes on, and backs off while the provider recovers. A 503 would end it:
/// py-oidc-auth-client goes on polling only at `authorization_pending` and `slow_down`, and
/// takes a 503 for "no device flow here" and starts a browser login instead. The wait the
/// provider asked for stays in `Retry-After`.
fn device_poll_error(e: AuthError) -> AuthError {
    if e.kind() != ErrorKind::Unavailable {
        return e;
    }
    let slow_down = AuthError::oauth(
        "slow_down",
        "the identity provider cannot be asked now; poll again more slowly",
    );
    match e.retry_after() {
        Some(secs) => slow_down.with_retry_after(secs),
        None => slow_down,
    }
}
