//! `POST /auth/v2/device`: start of the device authorization grant (RFC 8628).

use serde_json::{Map, Value};

use super::{EndpointResponse, provider_code, provider_refusal};
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
    /// device endpoint, when the advertised one is not there (404, 405 or 501), or when the
    /// provider refuses the device flow to this client (Keycloak, say, lists the endpoint for
    /// the whole realm but answers `unauthorized_client` to a client without the grant):
    /// py-oidc-auth-client then falls back to the browser flow. A provider that is busy is 503
    /// with `Retry-After` too.
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
            .provider_post(
                &endpoint,
                vec![("scope", scopes.join(" "))],
                unavailable_when_refused,
            )
            .await?;
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

/// How a provider's error answer at the device endpoint becomes ours: a refusal to start a
/// device authorization (`unauthorized_client`, `unsupported_grant_type`, `invalid_scope`,
/// ...) or an advertised endpoint that is not there (404, 405, 501) is 503: whatever the
/// reason, the device flow is not available to this client, and 503 is what makes the client
/// fall back to the browser flow (DESIGN section 5). Everything else is as at the other
/// provider endpoints (see [`provider_refusal`]).
fn unavailable_when_refused(status: u16, body: &Value) -> AuthError {
    let code = provider_code(body);
    let refused = match status {
        404 | 405 | 501 => true,
        408 | 429 => false,
        400..=499 => code.is_some(),
        _ => false,
    };
    if !refused {
        return provider_refusal(status, body);
    }
    let code = code.unwrap_or_default();
    if code == "invalid_client" {
        // Not only the device flow: every flow fails with these credentials.
        tracing::error!(
            status,
            error = %code,
            "the identity provider refused this server's client credentials at the device endpoint; answering 503 so that clients use the browser flow"
        );
    } else {
        tracing::warn!(
            status,
            error = %code,
            "the identity provider refused to start a device authorization for this client; answering 503 so that clients use the browser flow"
        );
    }
    AuthError::unavailable("the identity provider does not offer the device flow to this client")
}
