//! `POST /auth/v2/token`: the code, refresh and device-code grants, with the hyphenated field
//! names py-oidc-auth-client sends (`refresh-token`, `device-code`) and the standard ones.

use serde::Deserialize;

use super::{EndpointResponse, parse_params, token_json};
use crate::auth::OidcAuth;
use crate::broker::ExchangeRequest;
use crate::error::AuthError;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
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

impl OidcAuth {
    /// `POST /auth/v2/token` with a form body.
    pub async fn token_endpoint(&self, form: &[u8]) -> Result<EndpointResponse, AuthError> {
        self.token_request(form, None).await
    }

    /// `POST /auth/v2/token` with a form body and the request's `Authorization` header, which
    /// carries the client credentials of a token exchange (broker mode).
    pub async fn token_request(
        &self,
        form: &[u8],
        authorization: Option<&[u8]>,
    ) -> Result<EndpointResponse, AuthError> {
        let form: TokenForm = parse_params(form)?;
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
        if let Some(device_code) = form.device_code.filter(|c| !c.is_empty()) {
            if let Some(broker) = self.broker() {
                return self.broker_device_poll(broker, device_code).await;
            }
            return self
                .provider_grant(DEVICE_GRANT, "device_code", device_code)
                .await;
        }
        if let Some(refresh_token) = form.refresh_token.filter(|t| !t.is_empty()) {
            if let Some(broker) = self.broker() {
                return broker
                    .refresh(self, &refresh_token)
                    .await
                    .map(EndpointResponse::ok);
            }
            return self
                .provider_grant("refresh_token", "refresh_token", refresh_token)
                .await;
        }
        match (grant, form.code) {
            (None | Some("authorization_code"), Some(code)) if !code.is_empty() => {
                self.code_grant(code, form.redirect_uri, form.code_verifier, form.state)
                    .await
            }
            (Some(g), _) if !matches!(g, "authorization_code" | "refresh_token" | DEVICE_GRANT) => {
                Err(AuthError::oauth(
                    "unsupported_grant_type",
                    "the grant type is not supported",
                ))
            }
            _ => Err(AuthError::oauth(
                "invalid_request",
                "send code, refresh-token or device-code",
            )),
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
        let answer = match self
            .provider_token(vec![
                ("grant_type", DEVICE_GRANT.to_owned()),
                ("device_code", device_code.clone()),
            ])
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                if e.code() == Some("slow_down") {
                    broker.device_slowed(&device_code);
                }
                return Err(e);
            }
        };
        broker.redeem_device_code(&device_code, now).await?;
        broker
            .start_session(self, &answer, None, true)
            .await
            .map(EndpointResponse::ok)
    }

    /// A refresh or device-code grant, passed to the provider. Its OAuth errors
    /// (`authorization_pending`, `slow_down`, `access_denied`, `expired_token`,
    /// `invalid_grant`) come back at top level of a 400 answer.
    async fn provider_grant(
        &self,
        grant_type: &'static str,
        field: &'static str,
        value: String,
    ) -> Result<EndpointResponse, AuthError> {
        let answer = self
            .provider_token(vec![("grant_type", grant_type.to_owned()), (field, value)])
            .await?;
        let lifetime = self.config().refresh_token_lifetime.as_secs() as i64;
        token_json(&answer, self.now(), lifetime).map(EndpointResponse::ok)
    }
}
