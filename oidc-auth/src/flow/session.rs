//! Logout (RP-initiated, to the provider's end-session endpoint) and userinfo.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{EndpointResponse, parse_params, redirect};
use crate::auth::{OidcAuth, bearer_token};
use crate::error::{AuthError, ErrorKind};
use crate::policy::NoPolicy;

#[derive(Deserialize)]
struct LogoutQuery {
    post_logout_redirect_uri: Option<String>,
}

/// The user as py-oidc-auth reports it. A name without given and family parts is split at its
/// first space, so no word of a multi-word name is lost.
pub(crate) fn normalise_user(info: &Value) -> Value {
    let text = |name: &str| {
        info.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let username = text("preferred_username")
        .or(text("nickname"))
        .or(text("sub"))
        .unwrap_or("");
    let full = text("name").unwrap_or("").trim();
    let (first_split, last_split) = full.split_once(' ').unwrap_or((full, ""));
    json!({
        "username": username,
        "first_name": text("given_name").unwrap_or(first_split),
        "last_name": text("family_name").unwrap_or(last_split.trim()),
        "pw_name": username,
        "email": text("email").unwrap_or(""),
    })
}

impl OidcAuth {
    /// `GET /auth/v2/logout`: redirects to the provider's end-session endpoint. A
    /// `post_logout_redirect_uri` must be in the configured allow-list, compared exactly.
    pub async fn logout_endpoint(&self, query: &str) -> Result<EndpointResponse, AuthError> {
        let q: LogoutQuery = parse_params(query.as_bytes())?;
        let after = match q.post_logout_redirect_uri.as_deref() {
            Some(raw) => Some(redirect::check_logout(
                raw,
                &self.config().logout_redirect_uris,
            )?),
            None => None,
        };
        let discovery = self.provider().discovery().await?;
        let Some(mut url) = discovery.end_session_endpoint.clone() else {
            return Ok(match after {
                Some(after) => EndpointResponse::Redirect {
                    location: after.into(),
                },
                None => EndpointResponse::Json {
                    status: 200,
                    body: json!({"detail": "Logged out"}),
                },
            });
        };
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("client_id", self.config().client_id());
            if let Some(after) = &after {
                pairs.append_pair("post_logout_redirect_uri", after.as_str());
            }
        }
        Ok(EndpointResponse::Redirect {
            location: url.into(),
        })
    }

    /// `GET /auth/v2/userinfo`: validates the bearer token, asks the provider for the user and
    /// answers `{username, first_name, last_name, pw_name, email}`. A provider answer about
    /// another subject is 400 `invalid_request`; one that is not a JSON object with a `sub`
    /// is 502, and a busy provider (408, 429, 503, 504) is 503 with `Retry-After`. When the
    /// provider has no userinfo endpoint, or refuses a token that validated here (a JWT access
    /// token issued for this API rather than for the provider's own userinfo), the answer
    /// comes from the validated token's claims.
    pub async fn userinfo_endpoint<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<EndpointResponse, AuthError> {
        let raw = bearer_token(authorization, self.config().max_token_bytes)?;
        let token = self.validate(raw).await?;
        self.check::<NoPolicy>(&token)?;
        let from_token = || EndpointResponse::Json {
            status: 200,
            body: normalise_user(&Value::Object(token.claims().clone())),
        };
        if !self.is_provider_issuer(token.issuer()) {
            // A token of this server or a trusted peer: its claims are the user.
            return Ok(from_token());
        }
        let discovery = self.provider().discovery().await?;
        let Some(endpoint) = discovery.userinfo_endpoint.clone() else {
            return Ok(from_token());
        };
        let request = self.provider().http().get(&endpoint).bearer_auth(raw);
        // The status decides first: a refusal (401, 403) often has no body at all, only a
        // `WWW-Authenticate` header (RFC 6750), and must still lead to the token's claims.
        let answer = self
            .provider()
            .http()
            .send(request, 64 * 1024)
            .await
            .map_err(super::fetch_error)?;
        let status = answer.status;
        if status == 401 || status == 403 {
            return Ok(from_token());
        }
        if !(200..300).contains(&status) {
            // Throttled or overloaded (408, 429, 503, 504): 503 with Retry-After (the
            // provider's own, when it sent one), like the other provider calls; anything else
            // is the provider's failure.
            let error = super::fetch_error(crate::provider::FetchError::Status(status));
            self.log_provider_trouble(status, &error);
            return Err(super::with_providers_wait(
                error,
                status,
                answer.retry_after,
            ));
        }
        let info: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| super::fetch_error(crate::provider::FetchError::NotJson))?;
        // An answer that names no subject is the provider's fault (502); only a subject that
        // is not the token's is the caller's (SECURITY D9).
        let Some(sub) = info
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
        else {
            return Err(AuthError::new(
                ErrorKind::BadGateway,
                "the identity provider's userinfo names no subject",
            ));
        };
        if sub != token.sub() {
            return Err(AuthError::oauth(
                "invalid_request",
                "userinfo describes another subject",
            ));
        }
        Ok(EndpointResponse::Json {
            status: 200,
            body: normalise_user(&info),
        })
    }
}

impl OidcAuth {
    /// The provider's userinfo for `access_token`: `None` when it has no such endpoint or
    /// answers something else than claims; an error (503) when it cannot be asked now
    /// (unreachable, busy, this server's outbound limit), so that a caller which needed the
    /// answer says "try again" rather than blaming the provider's answer.
    pub(crate) async fn provider_userinfo(
        &self,
        access_token: &str,
    ) -> Result<Option<serde_json::Map<String, Value>>, AuthError> {
        let discovery = self.provider().discovery().await?;
        let Some(endpoint) = discovery.userinfo_endpoint.clone() else {
            return Ok(None);
        };
        let request = self
            .provider()
            .http()
            .get(&endpoint)
            .bearer_auth(access_token);
        let answer = self.provider().http().send_json(request, 64 * 1024).await;
        let status = match answer {
            Ok((200..=299, Value::Object(info))) => return Ok(Some(info)),
            Ok((status, _)) => status,
            Err(e) => match super::fetch_error(e) {
                e if e.kind() == ErrorKind::Unavailable => return Err(e),
                _ => return Ok(None),
            },
        };
        if super::is_transient(status) {
            return Err(super::try_again_later());
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_word_names_keep_every_word() {
        let user = normalise_user(&json!({"sub": "1", "name": "Alice van der Berg"}));
        assert_eq!(user["first_name"], "Alice");
        assert_eq!(user["last_name"], "van der Berg");
        assert_eq!(user["username"], "1");
    }

    #[test]
    fn given_and_family_names_win() {
        let user = normalise_user(&json!({
            "sub": "1", "preferred_username": "alice", "given_name": "Mary Ann",
            "family_name": "van der Berg", "name": "x y", "email": "a@example.com"
        }));
        assert_eq!(
            user,
            json!({"username": "alice", "first_name": "Mary Ann", "last_name": "van der Berg", "pw_name": "alice", "email": "a@example.com"})
        );
    }
}
