//! Token exchange (RFC 8693) in broker mode: an authenticated client presents a subject token
//! (a provider token, one of this server's, or a trusted peer's) and receives a token of this
//! server for an allowed audience, with at most the subject token's scope.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Broker;
use crate::auth::OidcAuth;
use crate::error::{AuthError, ErrorKind};
use crate::secret::Scope;

/// The token type URIs of RFC 8693 section 3 this server accepts and issues.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The form fields of a token-exchange request.
#[derive(Deserialize, Default)]
pub(crate) struct ExchangeRequest {
    pub(crate) subject_token: Option<String>,
    pub(crate) subject_token_type: Option<String>,
    pub(crate) requested_token_type: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
}

fn invalid_request(description: &'static str) -> AuthError {
    AuthError::oauth("invalid_request", description)
}

fn invalid_client(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidClient, description)
}

/// The client's id and secret from HTTP Basic (RFC 6749 section 2.3.1, form-encoded parts) or
/// from the form.
fn client_credentials(
    request: &ExchangeRequest,
    authorization: Option<&[u8]>,
) -> Result<(String, String), AuthError> {
    if let Some(header) = authorization {
        let header = std::str::from_utf8(header)
            .map_err(|_| invalid_client("the client credentials are malformed"))?;
        let (scheme, encoded) = header.trim().split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_client("the client credentials are malformed"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| invalid_client("the client credentials are malformed"))?;
            // Each part on its own: `+` and `%XX` decoded, `&` and `=` taken as themselves, so
            // that no id stands for another (`x&v=svc` is not `svc`).
            let unescape = |s: &str| {
                String::from_utf8(crate::percent::decoded_bytes(&s.replace('+', " "))).ok()
            };
            let (Some(id), Some(secret)) = (unescape(id), unescape(secret)) else {
                return Err(invalid_client("the client credentials are malformed"));
            };
            return Ok((id, secret));
        }
    }
    match (&request.client_id, &request.client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok((id.clone(), secret.clone())),
        _ => Err(invalid_client("client authentication is required")),
    }
}

impl Broker {
    /// The audience of the exchanged token: every target the client names (`audience` and
    /// `resource`, RFC 8693 section 2.1) must be this server's audience or an allowed exchange
    /// audience, and they must name the same one, since the token has one audience. None named:
    /// this server's audience.
    fn exchange_target(&self, request: &ExchangeRequest) -> Result<String, AuthError> {
        let invalid_target = |description| AuthError::oauth("invalid_target", description);
        let mut named = [request.audience.as_deref(), request.resource.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty());
        let Some(first) = named.next() else {
            return Ok(self.audience.clone());
        };
        for target in std::iter::once(first).chain(named) {
            if target != self.audience && !self.exchange_audiences.iter().any(|a| a == target) {
                return Err(invalid_target("the requested audience is not allowed"));
            }
            if target != first {
                return Err(invalid_target(
                    "the request names several targets; a token has one audience",
                ));
            }
        }
        Ok(first.to_owned())
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
    pub(crate) async fn exchange(
        &self,
        auth: &OidcAuth,
        request: ExchangeRequest,
        authorization: Option<&[u8]>,
    ) -> Result<Value, AuthError> {
        let (client_id, secret) = client_credentials(&request, authorization)?;
        if !client_allowed(auth, &client_id, &secret) {
            tracing::info!(client_id = ?for_log(&client_id), "token exchange refused: client authentication failed");
            return Err(invalid_client("client authentication failed"));
        }
        let subject_token = request
            .subject_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid_request("subject_token is required"))?;
        match request.subject_token_type.as_deref() {
            None | Some("") => return Err(invalid_request("subject_token_type is required")),
            Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
            Some(_) => return Err(invalid_request("subject_token_type is not supported")),
        }
        if let Some(requested) = request.requested_token_type.as_deref()
            && !requested.is_empty()
            && requested != ACCESS_TOKEN_TYPE
            && requested != JWT_TOKEN_TYPE
        {
            return Err(invalid_request("requested_token_type is not supported"));
        }
        let audience = self.exchange_target(&request)?;
        let subject = match auth.validate(subject_token).await {
            Ok(token) => token,
            Err(e) if e.kind() == ErrorKind::Unavailable => return Err(e),
            Err(e) => {
                tracing::info!(reason = %e, "token exchange refused: invalid subject token");
                return Err(invalid_request("the subject token is invalid"));
            }
        };
        // The claim constraints every route here applies (`OidcConfig::claims`): a subject
        // that no route would let in is not made a token for another service, where they
        // are not checked.
        if let Err(e) = auth.check::<crate::NoPolicy>(&subject) {
            tracing::info!(reason = %e, "token exchange refused: the subject token does not meet the configured claim constraints");
            return Err(invalid_request(
                "the subject token does not meet this server's requirements",
            ));
        }
        // A `scp` list entry is one scope, whole; one that is no valid scope token ("read
        // admin") cannot be written into the minted token's space-separated `scope` without
        // becoming other scopes, so it is not carried over.
        let held: Vec<&str> = subject
            .scopes()
            .into_iter()
            .filter(|s| Scope::is_valid_token(s))
            .collect();
        let scope = match request.scope.as_deref().map(str::trim) {
            Some(requested) if !requested.is_empty() => {
                let requested: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(extra) = requested.iter().find(|s| !held.contains(s)) {
                    tracing::info!(scope = ?for_log(extra), "token exchange refused: scope wider than the subject token's");
                    return Err(AuthError::oauth(
                        "invalid_scope",
                        "the requested scope exceeds the subject token's",
                    ));
                }
                requested.join(" ")
            }
            _ => held.join(" "),
        };
        let now = auth.now();
        let mut profile = self.profile_for(subject.claims(), &audience);
        profile.insert("scope".into(), Value::String(scope.clone()));
        let lifetime = self.access_ttl.min(subject.expires_at() - now);
        if lifetime <= 0 {
            return Err(invalid_request("the subject token is invalid"));
        }
        let (access, exp) = self
            .mint(
                &profile,
                &[("client_id", Value::String(client_id))],
                &audience,
                lifetime,
                now,
            )
            .await?;
        Ok(json!({
            "access_token": access,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires": exp,
            "expires_in": exp - now,
            "refresh_token": "",
            "refresh_expires": 0,
            "refresh_expires_in": 0,
            "scope": scope,
        }))
    }
}

/// Whether `id` / `secret` is a configured exchange client or the application's own
/// confidential client. Secrets are compared in constant time.
fn client_allowed(auth: &OidcAuth, id: &str, secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let config = auth.config();
    let mut allowed = false;
    for (client, expected) in &config.exchange_clients {
        if client == id {
            allowed |= expected.ct_eq(secret);
        }
    }
    if id == config.client_id()
        && let Some(expected) = config.client_secret()
    {
        allowed |= expected.ct_eq(secret);
    }
    allowed
}

/// A caller's text as it may be logged: at most 64 characters, written with `?` so that
/// control characters are escaped and a CR or LF cannot start a forged log line.
fn for_log(text: &str) -> &str {
    text.char_indices()
        .nth(64)
        .map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_text_is_logged_short_and_escaped() {
        assert_eq!(for_log("svc"), "svc");
        let long = "ü".repeat(100);
        assert_eq!(for_log(&long).chars().count(), 64);
        let forged = format!("{:?}", for_log("svc\r\nERROR forged"));
        assert!(!forged.contains('\n') && !forged.contains('\r'), "{forged}");
    }

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
        .into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = basic("svc%3Aa", "p%40ss");
        let got = client_credentials(&ExchangeRequest::default(), Some(&header));
        assert_eq!(got.ok(), Some(("svc:a".to_owned(), "p@ss".to_owned())));
        // Each part decodes on its own: what looks like a form's separators is part of it.
        for (id, secret, expected) in [
            ("x&v=svc", "s", ("x&v=svc", "s")),
            ("svc", "a&b=c", ("svc", "a&b=c")),
            ("my+svc", "p%2Bq+r", ("my svc", "p+q r")),
            ("svc", "100%", ("svc", "100%")),
        ] {
            let got = client_credentials(&ExchangeRequest::default(), Some(&basic(id, secret)));
            let expected = (expected.0.to_owned(), expected.1.to_owned());
            assert_eq!(got.ok(), Some(expected), "{id}:{secret}");
        }
        // An escape that decodes to bytes that are not UTF-8 is malformed.
        let e = client_credentials(&ExchangeRequest::default(), Some(&basic("svc", "%FF")));
        assert_eq!(e.err().map(|e| e.status()), Some(401));
    }

    #[test]
    fn missing_or_malformed_credentials_are_invalid_client() {
        for header in [None, Some(&b"Basic !!!"[..]), Some(&b"Basic Zm9v"[..])] {
            let e = client_credentials(&ExchangeRequest::default(), header);
            assert_eq!(e.err().map(|e| e.status()), Some(401));
        }
        let form = ExchangeRequest {
            client_id: Some("svc".into()),
            client_secret: Some("s".into()),
            ..ExchangeRequest::default()
        };
        assert_eq!(
            client_credentials(&form, None).ok(),
            Some(("svc".to_owned(), "s".to_owned()))
        );
    }
}
