//! `POST /token`: client authentication, the authorization code, refresh token and device code
//! grants, and the tokens they mint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::flows::{OAuthError, invalid_request, oauth_error, param, parse_pairs};
use super::op::{
    DEVICE_GRANT, DeviceStatus, Grant, OpState, RefreshEntry, random_token, s256,
    well_formed_verifier,
};
use super::provider::Shared;
use super::token::{sign_claims, unix_now};

/// `POST /token`.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_pairs(&body);
    let redeemed = {
        let mut op = shared.op();
        op.last_token = Some(form.clone());
        redeem(&mut op, &headers, &form)
    };
    match redeemed {
        Ok((grant, family)) => issue(&shared, grant, family),
        Err(error) => error.into_response(),
    }
}

/// `POST /revoke` (RFC 7009): after client authentication, a known refresh token's family is
/// revoked. Unknown tokens are answered the same way: 200 with an empty body.
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_pairs(&body);
    let mut op = shared.op();
    op.last_revocation = Some(form.clone());
    let client_id = match authenticate_client(&op, &headers, &form) {
        Ok(client_id) => client_id,
        Err(error) => return error.into_response(),
    };
    let Some(token) = param(&form, "token") else {
        return invalid_request("token is missing").into_response();
    };
    let family = op
        .refresh_tokens
        .get(token)
        .filter(|entry| same_client(client_id.as_deref(), &entry.grant.client_id))
        .map(|entry| entry.family);
    if let Some(family) = family {
        op.revoked_families.insert(family);
    }
    StatusCode::OK.into_response()
}

/// Authenticates the client and consumes the grant; returns what to issue tokens for and the
/// refresh token family they belong to.
fn redeem(
    op: &mut OpState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(Grant, u64), OAuthError> {
    let client_id = authenticate_client(op, headers, form)?;
    let client_id = client_id.as_deref();
    match param(form, "grant_type") {
        Some("authorization_code") => redeem_code(op, client_id, form),
        Some("refresh_token") => redeem_refresh(op, client_id, form),
        Some(DEVICE_GRANT) => redeem_device(op, client_id, form),
        Some(_) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this grant type is not supported",
        )),
        None => Err(invalid_request("grant_type is missing")),
    }
}

fn invalid_grant(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    param(form, name).ok_or_else(|| invalid_request(&format!("{name} is missing")))
}

/// Whether a grant issued to `owner` may be redeemed by the client that identified itself.
fn same_client(client_id: Option<&str>, owner: &str) -> bool {
    client_id.is_none_or(|id| id == owner)
}

fn redeem_code(
    op: &mut OpState,
    client_id: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<(Grant, u64), OAuthError> {
    let code = required(form, "code")?;
    let check_pkce = op.check_pkce;
    let family = op.new_family();
    let Some(entry) = op.codes.get_mut(code) else {
        return Err(invalid_grant("unknown authorization code"));
    };
    if entry.used {
        // RFC 6749 section 4.1.2: tokens issued from a replayed code should be revoked.
        if let Some(family) = entry.family {
            op.revoked_families.insert(family);
        }
        return Err(invalid_grant("the authorization code was already used"));
    }
    // Any redemption attempt consumes the code, successful or not.
    entry.used = true;
    if !same_client(client_id, &entry.grant.client_id) {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if param(form, "redirect_uri") != Some(entry.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if check_pkce {
        let verified = match (&entry.code_challenge, param(form, "code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                well_formed_verifier(verifier) && s256(verifier) == *challenge
            }
            _ => false,
        };
        if !verified {
            return Err(invalid_grant("PKCE verification failed"));
        }
    }
    entry.family = Some(family);
    Ok((entry.grant.clone(), family))
}

fn redeem_refresh(
    op: &mut OpState,
    client_id: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<(Grant, u64), OAuthError> {
    let token = required(form, "refresh_token")?;
    let Some(entry) = op.refresh_tokens.get_mut(token) else {
        return Err(invalid_grant("unknown refresh token"));
    };
    if !same_client(client_id, &entry.grant.client_id) {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let family = entry.family;
    if entry.spent {
        op.revoked_families.insert(family);
        return Err(invalid_grant(
            "the refresh token was already used; its whole family is revoked",
        ));
    }
    if op.revoked_families.contains(&family) {
        return Err(invalid_grant("the refresh token was revoked"));
    }
    if entry.expires_at.is_some_and(|at| Instant::now() >= at) {
        return Err(invalid_grant("the refresh token expired"));
    }
    entry.spent = true;
    let mut grant = entry.grant.clone();
    op.refresh_count += 1;
    // As a provider does, a refresh answers with the user's claims as they are now.
    if op.user.sub == grant.user.sub {
        grant.user = op.user.clone();
    }
    Ok((grant, family))
}

fn redeem_device(
    op: &mut OpState,
    client_id: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<(Grant, u64), OAuthError> {
    let device_code = required(form, "device_code")?;
    let Some(device) = op.devices.get_mut(device_code) else {
        return Err(invalid_grant("unknown device code"));
    };
    if !same_client(client_id, &device.client_id) {
        return Err(invalid_grant(
            "the device code was issued to another client",
        ));
    }
    if matches!(device.status, DeviceStatus::Used) {
        return Err(invalid_grant("the device code was already used"));
    }
    let now = Instant::now();
    if device.expires_at.is_some_and(|at| now >= at) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "expired_token",
            "the device code expired",
        ));
    }
    let since_last = now.saturating_duration_since(device.last_poll);
    device.last_poll = now;
    if since_last < device.interval {
        device.interval = device.interval.saturating_add(Duration::from_secs(5));
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "slow_down",
            "polling too fast; the interval grew by 5 seconds",
        ));
    }
    let user = match std::mem::replace(&mut device.status, DeviceStatus::Used) {
        DeviceStatus::Approved(user) => user,
        DeviceStatus::Pending => {
            device.status = DeviceStatus::Pending;
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                "the user has not answered yet",
            ));
        }
        DeviceStatus::Denied => {
            device.status = DeviceStatus::Denied;
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "the user denied the request",
            ));
        }
        DeviceStatus::Used => return Err(invalid_grant("the device code was already used")),
    };
    let grant = Grant {
        client_id: device.client_id.clone(),
        scope: device.scope.clone(),
        user,
        nonce: None,
        auth_time: unix_now(),
    };
    Ok((grant, op.new_family()))
}

/// Mints the access, ID and refresh tokens of `grant`, records them, and answers the token JSON.
/// Signing and the test's tweaks run without the state lock.
fn issue(shared: &Arc<Shared>, grant: Grant, family: u64) -> Response {
    let (audience, access_life, refresh_life, id_tweak, id_kid, response_tweak) = {
        let op = shared.op();
        (
            op.access_token_audience
                .clone()
                .unwrap_or_else(|| grant.client_id.clone()),
            op.access_token_expires_in,
            op.refresh_expires_in,
            op.id_token_tweak.clone(),
            op.id_token_kid.clone(),
            op.token_response_tweak.clone(),
        )
    };
    let now = unix_now();
    let exp = now.saturating_add(access_life);
    let user = &grant.user;

    let mut access = user.access_token_claims();
    access.extend([
        ("iss".to_owned(), Value::from(shared.issuer())),
        ("sub".to_owned(), Value::from(user.sub.as_str())),
        ("aud".to_owned(), Value::from(audience)),
        ("scope".to_owned(), Value::from(grant.scope.as_str())),
        ("iat".to_owned(), Value::from(now)),
        ("exp".to_owned(), Value::from(exp)),
        ("jti".to_owned(), Value::from(random_token(16))),
    ]);
    let access_token = sign_claims(shared, None, access);

    let mut id = user.claims.clone();
    id.extend([
        ("iss".to_owned(), Value::from(shared.issuer())),
        ("sub".to_owned(), Value::from(user.sub.as_str())),
        ("aud".to_owned(), Value::from(grant.client_id.as_str())),
        ("azp".to_owned(), Value::from(grant.client_id.as_str())),
        ("iat".to_owned(), Value::from(now)),
        ("exp".to_owned(), Value::from(exp)),
        ("auth_time".to_owned(), Value::from(grant.auth_time)),
    ]);
    if let Some(nonce) = &grant.nonce {
        id.insert("nonce".into(), Value::from(nonce.as_str()));
    }
    if let Some(tweak) = id_tweak {
        tweak(&mut id);
    }
    let id_token = sign_claims(shared, id_kid.as_deref(), id);

    let refresh_token = random_token(32);
    let scope = grant.scope.clone();
    {
        let mut op = shared.op();
        op.access_tokens
            .insert(access_token.clone(), grant.user.clone());
        op.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshEntry {
                family,
                spent: false,
                grant,
                expires_at: refresh_deadline(refresh_life),
            },
        );
    }

    let mut answer = Map::new();
    answer.extend([
        ("access_token".to_owned(), Value::from(access_token)),
        ("token_type".to_owned(), Value::from("Bearer")),
        ("expires_in".to_owned(), Value::from(access_life)),
        ("refresh_token".to_owned(), Value::from(refresh_token)),
        ("refresh_expires_in".to_owned(), Value::from(refresh_life)),
        ("id_token".to_owned(), Value::from(id_token)),
        ("scope".to_owned(), Value::from(scope)),
    ]);
    if let Some(tweak) = response_tweak {
        tweak(&mut answer);
    }
    (
        StatusCode::OK,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(Value::Object(answer)),
    )
        .into_response()
}

/// When a refresh token issued now dies: never for 0 (Keycloak's "no stated expiry"), at once
/// for a negative lifetime.
fn refresh_deadline(lifetime: i64) -> Option<Instant> {
    let now = Instant::now();
    match u64::try_from(lifetime) {
        Ok(0) => None,
        Ok(secs) => now.checked_add(Duration::from_secs(secs)),
        Err(_) => Some(now),
    }
}

/// Identifies the client of a `/token` or `/device` request: HTTP Basic (`client_secret_basic`,
/// both parts form-encoded per RFC 6749 section 2.3.1, raw accepted too) or the form's
/// `client_id` and `client_secret` (`client_secret_post`). When [`OpState::client`] is set the
/// client must be that one, with its secret if it has one; otherwise anyone is accepted.
/// Failures are `401 invalid_client`.
pub(super) fn authenticate_client(
    op: &OpState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Option<String>, OAuthError> {
    let basic = basic_credentials(headers)
        .map_err(|()| invalid_client("malformed HTTP Basic credentials"))?;
    let form_id = param(form, "client_id");
    let id = match (&basic, form_id) {
        (Some((id, _)), Some(form_id)) if !form_decoded_eq(id, form_id) => {
            return Err(invalid_client(
                "client_id differs between Basic and the form",
            ));
        }
        (Some((id, _)), _) => Some(form_decode(id)),
        (None, form_id) => form_id.map(str::to_owned),
    };
    let Some(client) = &op.client else {
        return Ok(id);
    };
    let known = match (&basic, &id) {
        (Some((raw, _)), _) => form_decoded_eq(raw, &client.id),
        (None, Some(id)) => *id == client.id,
        (None, None) => false,
    };
    if !known {
        return Err(invalid_client("unknown client or no client authentication"));
    }
    if let Some(secret) = &client.secret {
        let authenticated = match (&basic, param(form, "client_secret")) {
            (Some((_, raw)), _) => form_decoded_eq(raw, secret),
            (None, Some(sent)) => sent == secret,
            (None, None) => false,
        };
        if !authenticated {
            return Err(invalid_client("client authentication failed"));
        }
    }
    Ok(Some(client.id.clone()))
}

fn invalid_client(description: &str) -> OAuthError {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
        .with_challenge(r#"Basic realm="MockProvider""#)
}

/// The raw `(id, secret)` of an `Authorization: Basic` header; `Ok(None)` without one (or with
/// another scheme), `Err` when it cannot be decoded.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map_or_else(|| raw.to_owned(), |(_, value)| value.into_owned())
}

/// `raw` equals `expected` either form-decoded or taken literally.
fn form_decoded_eq(raw: &str, expected: &str) -> bool {
    raw == expected || form_decode(raw) == expected
}
