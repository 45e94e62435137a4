//! The browser- and device-facing endpoints of the mock provider: `/authorize`, `/device`,
//! `/userinfo` and `/logout`, and the answer helpers the token endpoint shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use url::Url;

use super::grants::authenticate_client;
use super::op::{
    CodeEntry, DeviceEntry, DeviceStatus, Grant, OpState, random_token, random_user_code,
};
use super::provider::Shared;
use super::token::unix_now;

/// Parses a query string or form body; a repeated name keeps its last value.
pub(super) fn parse_pairs(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// An OAuth error answer: `{"error": .., "error_description": ..}`, not cacheable; small enough
/// to travel in a `Result` before it becomes a [`Response`].
pub(super) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// A `WWW-Authenticate` challenge to send with it.
    challenge: Option<&'static str>,
}

impl OAuthError {
    /// Adds a `WWW-Authenticate` header.
    pub(super) fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, [(CACHE_CONTROL, "no-store")], Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// An [`OAuthError`].
pub(super) fn oauth_error(
    status: StatusCode,
    error: &'static str,
    description: &str,
) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_owned(),
        challenge: None,
    }
}

/// `400 invalid_request`.
pub(super) fn invalid_request(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// A `302 Found` to `location`.
fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(LOCATION, location)]).into_response()
}

/// A non-empty parameter.
pub(super) fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// `GET /authorize`: logs the configured user in without asking and redirects back with a code.
pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.unwrap_or_default().as_bytes());
    let (mut redirect, mut pairs, tweak) = {
        let mut op = shared.op();
        op.last_authorize = Some(query.clone());
        match authorization_response(shared.issuer(), &mut op, &query) {
            Ok((redirect, pairs)) => (redirect, pairs, op.authorize_response_tweak.clone()),
            Err(error) => return error.into_response(),
        }
    };
    // The test's tweak runs without the lock, so it may call back into the provider.
    if let Some(tweak) = tweak {
        tweak(&mut pairs);
    }
    if !pairs.is_empty() {
        redirect.query_pairs_mut().extend_pairs(&pairs);
    }
    found(redirect.as_str())
}

/// Checks an authorization request and stores its code; returns where to redirect and the
/// response parameters. Requests that cannot be redirected are answered with a 400 here.
fn authorization_response(
    issuer: &str,
    op: &mut OpState,
    query: &HashMap<String, String>,
) -> Result<(Url, Vec<(String, String)>), OAuthError> {
    let client_id =
        param(query, "client_id").ok_or_else(|| invalid_request("client_id is missing"))?;
    if op
        .client
        .as_ref()
        .is_some_and(|client| client.id != client_id)
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let redirect_uri =
        param(query, "redirect_uri").ok_or_else(|| invalid_request("redirect_uri is missing"))?;
    let redirect = Url::parse(redirect_uri)
        .map_err(|_| invalid_request("redirect_uri is not an absolute URL"))?;
    let state = param(query, "state").ok_or_else(|| invalid_request("state is missing"))?;
    let challenge = param(query, "code_challenge");

    let mut pairs: Vec<(String, String)> = Vec::new();
    let error = if param(query, "response_type") != Some("code") {
        Some("unsupported_response_type".to_owned())
    } else if challenge.is_some() && param(query, "code_challenge_method") != Some("S256") {
        Some("invalid_request".to_owned())
    } else {
        op.authorize_error.clone()
    };
    match error {
        Some(error) => pairs.push(("error".into(), error)),
        None => {
            let code = random_token(32);
            let entry = CodeEntry {
                grant: Grant {
                    client_id: client_id.to_owned(),
                    scope: query.get("scope").cloned().unwrap_or_default(),
                    user: op.user.clone(),
                    nonce: param(query, "nonce").map(str::to_owned),
                    auth_time: unix_now(),
                },
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: challenge.map(str::to_owned),
                used: false,
                family: None,
            };
            op.codes.insert(code.clone(), entry);
            pairs.push(("code".into(), code));
        }
    }
    pairs.push(("state".into(), state.to_owned()));
    if op.iss_in_authorization_response {
        pairs.push(("iss".into(), issuer.to_owned()));
    }
    Ok((redirect, pairs))
}

/// `POST /device`: starts a device authorization (RFC 8628 section 3.1).
pub(super) async fn device_authorization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_pairs(&body);
    let mut op = shared.op();
    if !op.device_enabled {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the device flow is disabled",
        )
        .into_response();
    }
    let client_id = match authenticate_client(&op, &headers, &form) {
        Ok(Some(client_id)) => client_id,
        Ok(None) => return invalid_request("client_id is missing").into_response(),
        Err(error) => return error.into_response(),
    };
    let device_code = random_token(32);
    let user_code = random_user_code();
    let now = Instant::now();
    let interval = op.device_interval;
    let expires_in = op.device_expires_in;
    let entry = DeviceEntry {
        user_code: user_code.clone(),
        client_id,
        scope: form.get("scope").cloned().unwrap_or_default(),
        status: DeviceStatus::Pending,
        expires_at: now.checked_add(Duration::from_secs(expires_in)),
        // RFC 8628 section 3.5: without an `interval`, clients wait 5 seconds.
        interval: Duration::from_secs(interval.unwrap_or(5)),
        last_poll: now,
    };
    op.devices.insert(device_code.clone(), entry);
    op.last_device = Some((device_code.clone(), user_code.clone()));
    drop(op);

    let verification_uri = format!("{}/device/verify", shared.issuer());
    let mut answer = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
        "verification_uri": verification_uri,
        "expires_in": expires_in,
    });
    if let (Some(interval), Some(answer)) = (interval, answer.as_object_mut()) {
        answer.insert("interval".into(), Value::from(interval));
    }
    (StatusCode::OK, [(CACHE_CONTROL, "no-store")], Json(answer)).into_response()
}

/// `GET`/`POST /userinfo`: the claims of the user an access token from `/token` was issued to.
pub(super) async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "no bearer token",
        )
        .with_challenge("Bearer")
        .into_response();
    };
    let answer = {
        let op = shared.op();
        op.access_tokens.get(token).map(|user| {
            op.userinfo_override
                .clone()
                .unwrap_or_else(|| user.userinfo())
        })
    };
    match answer {
        Some(answer) => Json(answer).into_response(),
        None => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token was not issued by this provider",
        )
        .with_challenge(r#"Bearer error="invalid_token""#)
        .into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `GET /logout`: RP-initiated logout; redirects to `post_logout_redirect_uri` (with `state`)
/// when given.
pub(super) async fn end_session(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.unwrap_or_default().as_bytes());
    shared.op().last_end_session = Some(query.clone());
    let Some(target) = param(&query, "post_logout_redirect_uri") else {
        return (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "logged out",
        )
            .into_response();
    };
    let Ok(mut target) = Url::parse(target) else {
        return invalid_request("post_logout_redirect_uri is not an absolute URL").into_response();
    };
    if let Some(state) = param(&query, "state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    found(target.as_str())
}
