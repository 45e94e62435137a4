//! `POST /auth/v2/device`: start of the device authorization grant (RFC 8628).

use serde_json::{Map, Value};

use super::EndpointResponse;
use crate::auth::OidcAuth;
use crate::error::{AuthError, ErrorKind};

const FIELDS: &[&str] = &[
    "device_code",
    "user_code",
    "verification_uri",
    "verification_uri_complete",
    "expires_in",
];

/// The polling interval a client must use when the provider states none (RFC 8628 section
/// 3.2). It is always written into the answer, so no client falls back to a shorter one.
const DEFAULT_INTERVAL_SECS: i64 = 5;

impl OidcAuth {
    /// Starts a device authorization at the provider. Answers 503 when the provider has no
    /// device endpoint, or refuses the device flow to this client (Keycloak, say, lists the
    /// endpoint for the whole realm but answers `unauthorized_client` to a client without the
    /// grant): py-oidc-auth-client then falls back to the browser flow.
    pub async fn device_endpoint(&self) -> Result<EndpointResponse, AuthError> {
        let endpoint = self
            .provider_endpoint(
                |d| d.device_authorization_endpoint.as_ref(),
                "the identity provider does not support the device flow",
            )
            .await?;
        let config = self.config();
        let mut scopes: Vec<&str> = config.scopes.iter().map(|s| s.as_str()).collect();
        if config.offline_access && !scopes.contains(&"offline_access") {
            scopes.push("offline_access");
        }
        let answer = self
            .provider_post(&endpoint, vec![("scope", scopes.join(" "))])
            .await
            .map_err(unavailable_when_refused)?;
        for required in ["device_code", "user_code", "verification_uri", "expires_in"] {
            if !answer.contains_key(required) {
                return Err(AuthError::new(
                    ErrorKind::BadGateway,
                    "the identity provider's device answer is incomplete",
                ));
            }
        }
        // A missing, zero, negative or non-integer interval is replaced by the default.
        let interval = answer
            .get("interval")
            .and_then(Value::as_i64)
            .filter(|secs| *secs > 0)
            .unwrap_or(DEFAULT_INTERVAL_SECS);
        if let Some(broker) = self.broker()
            && let Some(code) = answer.get("device_code").and_then(Value::as_str)
        {
            let expires_in = answer
                .get("expires_in")
                .and_then(Value::as_i64)
                .unwrap_or(600);
            broker.track_device(code, interval, expires_in, self.now());
        }
        let mut body: Map<String, Value> = FIELDS
            .iter()
            .filter_map(|f| answer.get(*f).map(|v| ((*f).to_owned(), v.clone())))
            .collect();
        body.insert("interval".to_owned(), Value::from(interval));
        Ok(EndpointResponse::Json {
            status: 200,
            body: Value::Object(body),
        })
    }
}

/// A provider's refusal to start a device authorization (`unauthorized_client`,
/// `unsupported_grant_type`, `invalid_scope`, ...) as 503: whatever the reason, the device flow
/// is not available to this client, and 503 is what makes the client fall back to the browser
/// flow. Other failures keep their status.
fn unavailable_when_refused(error: AuthError) -> AuthError {
    if error.kind() != ErrorKind::OAuth {
        return error;
    }
    tracing::warn!(
        error = error.code().unwrap_or_default(),
        "the identity provider refused to start a device authorization for this client; answering 503 so that clients use the browser flow"
    );
    AuthError::unavailable("the identity provider does not offer the device flow to this client")
}
