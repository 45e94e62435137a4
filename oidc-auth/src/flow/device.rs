//! `POST /auth/v2/device`: start of the device authorization grant (RFC 8628).

use serde_json::{Map, Value};

use super::{EndpointResponse, provider_code, provider_refusal, whole_seconds};
use crate::auth::{OidcAuth, paced_log};
use crate::error::{AuthError, ErrorKind};

/// The polling interval a client must use when the provider states none (RFC 8628 section
/// 3.2). It is always written into the answer, so no client falls back to a shorter one.
const DEFAULT_INTERVAL_SECS: i64 = 5;
/// Upper bound of a device code's interval and lifetime as the provider states them, and as
/// clients are told them: a day, where a provider's `i64::MAX` would have a client sleep
/// forever (or fail: Python's `time.sleep` refuses it), and the broker's pacing stops there.
pub(crate) const MAX_DEVICE_SECONDS: i64 = 24 * 3600;

impl OidcAuth {
    /// Starts a device authorization at the provider. Answers 503 when the provider has no
    /// device endpoint, when the advertised one is not there (404, 405 or 501), or when the
    /// provider refuses the device flow to this client (Keycloak, say, lists the endpoint for
    /// the whole realm but answers `unauthorized_client` to a client without the grant):
    /// py-oidc-auth-client then falls back to the browser flow. A provider that is busy is 503
    /// with `Retry-After` too, and so is one that fails (a server error, a body that is not
    /// JSON) or whose answer is not a usable device authorization.
    pub async fn device_endpoint(&self) -> Result<EndpointResponse, AuthError> {
        let endpoint = self
            .provider_endpoint(
                |d| d.device_authorization_endpoint.as_ref(),
                "the identity provider does not support the device flow",
            )
            .await?;
        let config = self.config();
        let mut scopes: Vec<&str> = config.scopes.iter().map(|s| s.as_str()).collect();
        // As at login: without `openid` the provider issues no ID token.
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        if config.offline_access && !scopes.contains(&"offline_access") {
            scopes.push("offline_access");
        }
        let answer = self
            .provider_post(
                &endpoint,
                vec![("scope", scopes.join(" "))],
                unavailable_when_refused,
            )
            .await
            .map_err(unavailable_when_broken)?;
        let answer = DeviceAnswer::check(&answer)?;
        if let Some(broker) = self.broker() {
            broker.track_device(
                &answer.device_code,
                answer.interval,
                answer.expires_in,
                self.now(),
            );
        }
        Ok(EndpointResponse::Json {
            status: 200,
            body: answer.into_json(),
        })
    }
}

impl OidcAuth {
    /// The answer of a device route the application switched off: 503, as when the provider
    /// has no device flow, so that py-oidc-auth-client signs in with the browser instead.
    #[cfg(any(feature = "axum", feature = "actix-web"))]
    pub(crate) fn no_device_endpoint(&self) -> Result<EndpointResponse, AuthError> {
        Err(AuthError::unavailable(
            "this server does not offer the device flow",
        ))
    }
}

/// A provider's device authorization answer (RFC 8628 section 3.2) that a client can use.
#[derive(Debug, PartialEq)]
struct DeviceAnswer {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: i64,
    /// The provider's interval, or [`DEFAULT_INTERVAL_SECS`] when it states none or 0.
    interval: i64,
}

impl DeviceAnswer {
    /// Checks every field the client relies on: the codes are non-empty strings, the
    /// verification URIs absolute `http`/`https` URLs, `expires_in` a positive and `interval` a
    /// non-negative integer of seconds (a number, or a string of one, as some providers send
    /// them). Anything else is 503: a client could neither show the user where to go nor poll,
    /// and in broker mode the polls could not be paced, so the device flow is not available and
    /// the client should use the browser. An optional field that is `null` counts as absent.
    /// Google's `verification_url` is read when `verification_uri` is absent, and passed on as
    /// `verification_uri`, the name RFC 8628 and the clients use.
    fn check(answer: &Map<String, Value>) -> Result<Self, AuthError> {
        let present = |name: &str| answer.get(name).filter(|v| !v.is_null());
        let text = |name: &'static str| {
            present(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| unusable(name))
        };
        let web_url = |name: &'static str| {
            text(name).and_then(|uri| match url::Url::parse(&uri) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(uri),
                _ => Err(unusable(name)),
            })
        };
        let seconds = |name: &'static str, least: i64| {
            present(name)
                .and_then(whole_seconds)
                .filter(|secs| *secs >= least)
                .ok_or_else(|| unusable(name))
        };
        let verification_uri =
            if present("verification_uri").is_none() && present("verification_url").is_some() {
                "verification_url"
            } else {
                "verification_uri"
            };
        let verification_uri_complete = match present("verification_uri_complete") {
            Some(_) => Some(web_url("verification_uri_complete")?),
            None => None,
        };
        let interval = match present("interval") {
            Some(_) => Some(seconds("interval", 0)?),
            None => None,
        };
        Ok(Self {
            device_code: text("device_code")?,
            user_code: text("user_code")?,
            verification_uri: web_url(verification_uri)?,
            verification_uri_complete,
            expires_in: seconds("expires_in", 1)?.min(MAX_DEVICE_SECONDS),
            interval: interval
                .filter(|secs| *secs > 0)
                .unwrap_or(DEFAULT_INTERVAL_SECS)
                .min(MAX_DEVICE_SECONDS),
        })
    }

    /// The answer of our device route: the provider's fields, and always an `interval`.
    fn into_json(self) -> Value {
        let mut body = Map::new();
        body.insert("device_code".into(), self.device_code.into());
        body.insert("user_code".into(), self.user_code.into());
        body.insert("verification_uri".into(), self.verification_uri.into());
        if let Some(complete) = self.verification_uri_complete {
            body.insert("verification_uri_complete".into(), complete.into());
        }
        body.insert("expires_in".into(), self.expires_in.into());
        body.insert("interval".into(), self.interval.into());
        Value::Object(body)
    }
}

/// 503 for a device answer whose `field` is missing or unusable; the log names the field,
/// never its value (the device code is a credential).
fn unusable(field: &'static str) -> AuthError {
    paced_log!(
        warn,
        field,
        "the identity provider's device authorization answer lacks a usable field; answering 503 so that clients use the browser flow"
    );
    AuthError::unavailable("the identity provider's device answer is incomplete or malformed")
}

/// A device endpoint that answers what no client can use (a server error, a body that is not
/// JSON, an error without a code) is 503 like one that is not there: the device flow is not
/// available, and 503 is what makes py-oidc-auth-client use the browser flow instead, where a
/// 502 would end its login (DESIGN section 5). The cause is logged.
fn unavailable_when_broken(e: AuthError) -> AuthError {
    if e.kind() != ErrorKind::BadGateway {
        return e;
    }
    paced_log!(warn, error = %e, "the identity provider's device endpoint cannot be used; answering 503 so that clients use the browser flow");
    AuthError::unavailable("the identity provider's device endpoint cannot be used now")
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
        paced_log!(
            warn,
            status,
            error = %code,
            "the identity provider refused to start a device authorization for this client; answering 503 so that clients use the browser flow"
        );
    }
    AuthError::unavailable("the identity provider does not offer the device flow to this client")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(answer: Value) -> Result<DeviceAnswer, AuthError> {
        DeviceAnswer::check(answer.as_object().unwrap_or(&Map::new()))
    }

    fn valid() -> Value {
        json!({
            "device_code": "dc", "user_code": "UC-1", "verification_uri": "https://op.example/device",
            "verification_uri_complete": "https://op.example/device?user_code=UC-1",
            "expires_in": 600, "interval": 3,
        })
    }

    #[test]
    fn a_complete_answer_is_passed_on_with_its_interval() {
        let answer = check(valid()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((answer.expires_in, answer.interval), (600, 3));
        assert_eq!(answer.into_json(), valid());
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        for absent in [json!(null), json!("absent")] {
            let mut answer = valid();
            for field in ["verification_uri_complete", "interval"] {
                if absent.is_null() {
                    answer[field] = Value::Null;
                } else if let Some(map) = answer.as_object_mut() {
                    map.remove(field);
                }
            }
            let answer = check(answer).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(answer.verification_uri_complete, None);
            assert_eq!(answer.interval, DEFAULT_INTERVAL_SECS);
        }
    }

    /// A provider's lifetime or interval past a day is passed on as a day.
    #[test]
    fn lifetimes_past_a_day_are_a_day() {
        for huge in [json!(i64::MAX), json!(86_401), json!(i64::MAX.to_string())] {
            let mut answer = valid();
            answer["expires_in"] = huge.clone();
            answer["interval"] = huge.clone();
            let answer = check(answer).unwrap_or_else(|e| panic!("{huge}: {e}"));
            let json = answer.into_json();
            assert_eq!(json["expires_in"], json!(86_400), "{huge}");
            assert_eq!(json["interval"], json!(86_400), "{huge}");
        }
    }

    #[test]
    fn a_zero_interval_becomes_the_default() {
        let mut answer = valid();
        answer["interval"] = json!(0);
        assert_eq!(check(answer).map(|a| a.interval), Ok(DEFAULT_INTERVAL_SECS));
    }

    /// Lifetimes as strings of digits (as Azure AD's v1 endpoints send them) and Google's
    /// `verification_url` are read; the answer is passed on in RFC 8628's spelling.
    #[test]
    fn string_lifetimes_and_a_verification_url_are_read() {
        let mut answer = valid();
        answer["expires_in"] = json!("1800");
        answer["interval"] = json!("5");
        if let Some(map) = answer.as_object_mut() {
            map.remove("verification_uri");
            map.insert(
                "verification_url".into(),
                json!("https://op.example/device"),
            );
        }
        let answer = check(answer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((answer.expires_in, answer.interval), (1800, 5));
        let mut expected = valid();
        expected["expires_in"] = json!(1800);
        expected["interval"] = json!(5);
        assert_eq!(answer.into_json(), expected);
    }

    #[test]
    fn unusable_fields_are_503() {
        for (field, value) in [
            ("device_code", json!("")),
            ("device_code", json!(42)),
            ("user_code", json!(null)),
            ("user_code", json!(["UC"])),
            ("verification_uri", json!("/device")),
            ("verification_uri", json!("javascript:alert(1)")),
            ("verification_uri", json!("ftp://op.example/device")),
            ("verification_uri_complete", json!("device?user_code=1")),
            ("verification_uri_complete", json!(7)),
            ("expires_in", json!(0)),
            ("expires_in", json!(-5)),
            ("expires_in", json!(600.5)),
            ("expires_in", json!("600s")),
            ("expires_in", json!("0")),
            ("interval", json!(-1)),
            ("interval", json!(2.5)),
            ("interval", json!("five")),
            ("verification_url", json!("/device")),
        ] {
            let mut answer = valid();
            if field == "verification_url"
                && let Some(map) = answer.as_object_mut()
            {
                map.remove("verification_uri");
            }
            answer[field] = value.clone();
            let status = check(answer).map_err(|e| e.status());
            assert_eq!(status, Err(503), "{field} = {value}");
        }
    }
}
