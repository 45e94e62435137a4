//! ID token validation at the end of a code exchange (OpenID Connect Core 3.1.3.7), of a
//! refresh (12.2) and of a device grant.

use serde_json::Value;

use super::MAX_PROVIDER_ANSWER;
use crate::auth::OidcAuth;
use crate::error::{AuthError, ErrorKind};
use crate::secret::Secret;
use crate::token::{self, Expectations, IdToken, TokenUse};

fn refused(description: &'static str) -> AuthError {
    AuthError::oauth("invalid_grant", description)
}

impl OidcAuth {
    /// Validates the ID token of a code exchange: signature with the provider's keys, then `iss`,
    /// `aud` containing the client id, `azp`, `exp`, `iat`, `sub`, and `nonce` equal (compared
    /// in constant time) to the one sent at login. Failures are 400 `invalid_grant`; a provider
    /// outage stays 503. Its size is bounded by the token answer it came in (64 KiB).
    pub(crate) async fn validate_id_token(
        &self,
        raw: &str,
        nonce: &Secret,
    ) -> Result<IdToken, AuthError> {
        self.check_id_token(raw, Some(nonce)).await
    }

    /// Validates an ID token that comes without a login's nonce as
    /// [`validate_id_token`](Self::validate_id_token) does, except the nonce: that of a refresh
    /// answer (OpenID Connect Core 12.2; the caller checks that `sub` is the session's) and of a
    /// device grant (RFC 8628 sends none).
    pub(crate) async fn validate_id_token_without_nonce(
        &self,
        raw: &str,
    ) -> Result<IdToken, AuthError> {
        self.check_id_token(raw, None).await
    }

    async fn check_id_token(
        &self,
        raw: &str,
        nonce: Option<&Secret>,
    ) -> Result<IdToken, AuthError> {
        let config = self.config();
        // Bounded by the provider's token answer it came in, not by the bearer limit
        // (`max_token_bytes`): an ID token is never sent as a bearer token here, and one with
        // many groups (Azure AD, Keycloak) is often larger than a bearer token may be.
        let jws = token::parse_jws_for(raw, MAX_PROVIDER_ANSWER, &config.algorithms, TokenUse::Id)
            .map_err(|_| refused("the ID token is malformed"))?;
        // The signature first: nothing is read from claims the provider did not sign.
        self.provider()
            .verify(jws.signed())
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Unavailable => e,
                _ => refused("the ID token signature is invalid"),
            })?;
        let issuer = self.provider().issuer();
        let claims = &jws.claims;
        let times = token::check_registered(
            claims,
            &Expectations {
                now: self.now(),
                leeway: crate::clock::secs(config.leeway),
                issuer: issuer.as_str(),
                audience: Some(config.client_id()),
            },
        )
        .map_err(|_| refused("the ID token claims are invalid"))?;
        if times.1.is_none() {
            return Err(refused("the ID token has no issue time"));
        }
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp") {
            Some(Value::String(azp)) if azp == config.client_id() => {}
            None if !several_audiences => {}
            _ => return Err(refused("the ID token was issued to another party")),
        }
        if let Some(nonce) = nonce {
            let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if sent.is_empty() || !nonce.ct_eq(sent) {
                return Err(refused("the ID token nonce does not match the login"));
            }
        }
        IdToken::new(jws.claims, times).ok_or_else(|| refused("the ID token claims are invalid"))
    }
}
