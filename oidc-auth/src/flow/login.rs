//! Login (authorization code with PKCE) and the callback that completes it.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::seal::{Reservation, Transaction, try_random};
use super::{EndpointResponse, parse_params, redirect, token_json};
use crate::auth::OidcAuth;
use crate::error::{AuthError, ErrorKind};
use crate::secret::Scope;
use crate::secret::Secret;

/// How long a login may take between `/login` and the code exchange.
const LOGIN_LIFETIME_SECS: i64 = 600;
const PROMPTS: &[&str] = &["none", "login", "consent", "select_account", "create"];

/// A `prompt` as the provider receives it: a space-separated list of known values, each at
/// most once, and `none` only alone (OpenID Connect Core section 3.1.2.1).
fn prompt_values(prompt: &str) -> Result<String, AuthError> {
    let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
    let known = values.iter().all(|v| PROMPTS.contains(v));
    let repeated = values
        .iter()
        .enumerate()
        .any(|(i, v)| values[..i].contains(v));
    if values.is_empty() || !known || repeated || (values.len() > 1 && values.contains(&"none")) {
        return Err(bad_request("prompt is not supported"));
    }
    Ok(values.join(" "))
}

#[derive(Deserialize)]
struct LoginQuery {
    redirect_uri: Option<String>,
    prompt: Option<String>,
    offline_access: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

fn bad_request(description: &'static str) -> AuthError {
    AuthError::oauth("invalid_request", description)
}

/// `BASE64URL(SHA256(verifier))`, the S256 code challenge (RFC 7636 section 4.2).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

fn is_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The handle at the end of `state`: the client's `code_verifier` takes the text after the last
/// `|`, and so do we.
pub(crate) fn handle_of(state: &str) -> &str {
    state.rsplit('|').next().unwrap_or(state)
}

impl OidcAuth {
    /// `GET /auth/v2/login`: checks `redirect_uri` against the allow-list, seals a new
    /// transaction into `state` and redirects to the provider's authorization endpoint. A
    /// request whose sealed handle would be too long to open at the callback is 400
    /// `invalid_request`; a failing random number generator is 500 and no redirect.
    pub async fn login_endpoint(&self, query: &str) -> Result<EndpointResponse, AuthError> {
        let q: LoginQuery = parse_params(query.as_bytes())?;
        let config = self.config();
        let raw_redirect = q
            .redirect_uri
            .ok_or_else(|| bad_request("redirect_uri is required"))?;
        let redirect_uri = redirect::check_login(&raw_redirect, &config.login_redirect_uris)?;
        let mut scopes: Vec<String> = match q.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(requested) => {
                let words: Vec<&str> = requested.split(' ').filter(|w| !w.is_empty()).collect();
                if !words.iter().all(|w| Scope::is_valid_token(w)) {
                    return Err(bad_request("scope is malformed"));
                }
                words.into_iter().map(str::to_owned).collect()
            }
            None => config
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let offline = match q.offline_access.as_deref() {
            Some(v) => matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
            None => config.offline_access,
        };
        if offline && !scopes.iter().any(|s| s == "offline_access") {
            scopes.push("offline_access".to_owned());
        }
        let prompt = q.prompt.as_deref().map(prompt_values).transpose()?;
        let client_challenge = match (q.code_challenge, q.code_challenge_method.as_deref()) {
            (None, _) => None,
            (Some(c), None | Some("S256")) if is_challenge(&c) => Some(c),
            _ => return Err(bad_request("code_challenge must be an S256 challenge")),
        };
        let verifier = if client_challenge.is_some() {
            String::new()
        } else {
            URL_SAFE_NO_PAD.encode(try_random::<32>()?)
        };
        let challenge = client_challenge.clone().unwrap_or_else(|| s256(&verifier));
        let tx = Transaction {
            id: try_random::<16>()?,
            expires_at: self.now().saturating_add(LOGIN_LIFETIME_SECS),
            verifier: Secret::new(verifier),
            client_challenge: client_challenge.map(Secret::new),
            nonce: Secret::new(URL_SAFE_NO_PAD.encode(try_random::<16>()?)),
            redirect_uri: redirect_uri.as_str().to_owned(),
            scope: scopes.join(" "),
        };
        // Sealed before the provider is involved: a login whose handle the callback could not
        // open (a long redirect_uri with a long scope) is refused here, not after the user has
        // signed in.
        let handle = self.sealer().seal(&tx)?;
        let state = format!("{}|{handle}", URL_SAFE_NO_PAD.encode(try_random::<12>()?));
        let authorize = self
            .provider_endpoint(
                |d| d.authorization_endpoint.as_ref(),
                "the identity provider has no authorization endpoint",
            )
            .await?;
        let mut url = authorize;
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("response_type", "code")
                .append_pair("client_id", config.client_id())
                .append_pair("redirect_uri", redirect_uri.as_str())
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", tx.nonce.expose())
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(prompt) = &prompt {
                pairs.append_pair("prompt", prompt);
            }
        }
        Ok(EndpointResponse::Redirect {
            location: url.into(),
        })
    }

    /// Reserves a login transaction for a code exchange, after every check that needs no
    /// provider and just before the provider is asked. Fails if the handle is spent or another
    /// redemption of it is under way. Confirmed once the provider accepts the code, and spent
    /// as a failed redemption otherwise (see [`Reservation`]), which can never fill the bounded
    /// set of accepted ones.
    ///
    /// In broker mode the shared store also records the redemption; see
    /// [`Self::record_redemption`].
    async fn reserve_transaction(
        &self,
        tx: &Transaction,
        now: i64,
    ) -> Result<Reservation<'_>, AuthError> {
        let reservation = self.sealer().reserve(tx, now)?;
        self.record_redemption(tx, now, reservation).await
    }

    /// In broker mode, records the redemption `reservation` holds in the shared store, before
    /// the provider is asked: instances sharing the state key then redeem a handle once between
    /// them and a handle spent on one never reaches the provider from another. The store sets
    /// no bound on these records, so they cannot refuse sign-ins.
    ///
    /// A store that cannot be reached (503 with Retry-After) is taken to have recorded nothing,
    /// and nothing was sent to the provider: the local reservation is released, so the retry the
    /// 503 invites can complete the login (should the store have recorded it after all, the
    /// retry is refused there). Any other refusal (redeemed already, on another instance) spends
    /// the handle here too.
    async fn record_redemption<'a>(
        &self,
        tx: &Transaction,
        now: i64,
        reservation: Reservation<'a>,
    ) -> Result<Reservation<'a>, AuthError> {
        let Some(broker) = self.broker() else {
            return Ok(reservation);
        };
        match broker.redeem_login(&tx.id, tx.expires_at, now).await {
            Ok(()) => Ok(reservation),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                reservation.release();
                Err(e)
            }
            Err(e) => {
                drop(reservation);
                Err(e)
            }
        }
    }

    /// `GET /auth/v2/callback`: the provider redirected here with `code` and `state`. Opens the
    /// transaction, checks `iss` (RFC 9207), exchanges the code and answers Token JSON. Nothing
    /// reaches the provider unless the state is valid and unspent. An error callback with the
    /// right `iss` spends the handle too (SECURITY D5: the transaction is cleared), so the code
    /// of that login can no longer be redeemed.
    pub async fn callback_endpoint(&self, query: &str) -> Result<EndpointResponse, AuthError> {
        let q: CallbackQuery = parse_params(query.as_bytes())?;
        let state = q.state.ok_or_else(|| bad_request("state is required"))?;
        let now = self.now();
        let tx = self.sealer().open(handle_of(&state), now)?;
        // Error answers carry `iss` too (RFC 9207 section 2): one from another issuer, or
        // without it where the provider promises it, is refused before it can spend the
        // login, like a success answer.
        let discovery = self.provider().discovery().await?;
        let issuer = self.provider().issuer();
        match q.iss {
            Some(iss) if iss != issuer.as_str() => {
                return Err(bad_request(
                    "the authorization response comes from another issuer",
                ));
            }
            None if discovery.authorization_response_iss_parameter_supported => {
                return Err(bad_request("the authorization response lacks its issuer"));
            }
            _ => {}
        }
        if let Some(error) = q.error {
            // Spent among the failed redemptions directly: an error callback never reaches the
            // provider, so the capacity that bounds accepted ones must not answer it with 503.
            let reservation = self.sealer().reserve_failing(&tx, now)?;
            drop(self.record_redemption(&tx, now, reservation).await?);
            let code = if error == "access_denied" {
                "access_denied"
            } else {
                "invalid_request"
            };
            return Err(AuthError::oauth(
                code,
                "the login was not completed at the identity provider",
            ));
        }
        let code = q
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad_request("code is required"))?;
        if tx.client_challenge.is_some() {
            return Err(bad_request(
                "this login is completed by its client at the token endpoint",
            ));
        }
        let verifier = tx.verifier.expose().to_owned();
        let reservation = self.reserve_transaction(&tx, now).await?;
        self.exchange_code(&tx, reservation, code, verifier).await
    }

    /// The code grant at the token endpoint: `code_verifier` is either the sealed handle from
    /// `state` (py-oidc-auth-client) or, for a client that brought its own challenge, its own
    /// verifier together with `state`. A request refused before the provider is asked (a wrong
    /// verifier, another redirect URI) spends nothing.
    pub(crate) async fn code_grant(
        &self,
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        state: Option<String>,
    ) -> Result<EndpointResponse, AuthError> {
        let redirect_uri = redirect_uri.ok_or_else(|| bad_request("redirect_uri is required"))?;
        let code_verifier =
            code_verifier.ok_or_else(|| bad_request("code_verifier is required"))?;
        let now = self.now();
        let (tx, verifier) = match self.sealer().open(&code_verifier, now) {
            Ok(tx) if tx.client_challenge.is_none() => {
                let verifier = tx.verifier.expose().to_owned();
                (tx, verifier)
            }
            Ok(_) => {
                return Err(AuthError::oauth(
                    "invalid_grant",
                    "send your own code_verifier",
                ));
            }
            Err(sealed_error) => {
                let Some(state) = state else {
                    return Err(sealed_error);
                };
                let tx = self.sealer().open(handle_of(&state), now)?;
                let challenge = tx.client_challenge.clone().ok_or_else(|| {
                    AuthError::oauth(
                        "invalid_grant",
                        "the login state is invalid, expired or already used",
                    )
                })?;
                if !challenge.ct_eq(&s256(&code_verifier)) {
                    return Err(AuthError::oauth(
                        "invalid_grant",
                        "code_verifier does not match the challenge",
                    ));
                }
                (tx, code_verifier)
            }
        };
        if tx.redirect_uri != redirect_uri {
            return Err(AuthError::oauth(
                "invalid_grant",
                "redirect_uri differs from the login",
            ));
        }
        let reservation = self.reserve_transaction(&tx, now).await?;
        self.exchange_code(&tx, reservation, code, verifier).await
    }

    /// Exchanges `code` at the provider. The handle is spent once the provider accepts the code,
    /// whatever follows (the code is then used up at the provider too), among the accepted
    /// redemptions; when the provider refuses it or cannot be reached, `reservation` is dropped
    /// and the handle is spent all the same, among the failed ones (SECURITY D2). An accepted
    /// code answered without an ID token is 502: the provider's fault, not the caller's grant.
    async fn exchange_code(
        &self,
        tx: &Transaction,
        reservation: Reservation<'_>,
        code: String,
        verifier: String,
    ) -> Result<EndpointResponse, AuthError> {
        let granted = self
            .provider_grant_answer(vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", tx.redirect_uri.clone()),
                ("code_verifier", verifier),
            ])
            .await?;
        reservation.confirm();
        let answer = granted.answer();
        granted.finish(async {
            let identity = match answer.get("id_token").and_then(serde_json::Value::as_str) {
                Some(id_token) => self.validate_id_token(id_token, &tx.nonce).await?,
                // The code was good (the provider accepted it), so this is not the caller's
                // grant failing: a provider, or its registration of this client, that does not
                // run OpenID Connect (no `openid` scope granted, a plain OAuth server). 502.
                None => {
                    tracing::error!(
                        "identity provider answered a code exchange without an ID token: check that it runs OpenID Connect and grants this client the `openid` scope"
                    );
                    return Err(AuthError::new(
                        ErrorKind::BadGateway,
                        "the identity provider sent no ID token",
                    ));
                }
            };
            if let Some(broker) = self.broker() {
                return broker
                    .start_session(self, answer, Some(identity), Some(&tx.scope))
                    .await
                    .map(EndpointResponse::ok);
            }
            let lifetime = crate::clock::secs(self.config().refresh_token_lifetime);
            token_json(answer, None, self.now(), lifetime).map(EndpointResponse::ok)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    /// `prompt` is a space-separated list (OpenID Connect Core section 3.1.2.1): known values,
    /// each once, `none` alone; the provider gets it with single spaces.
    #[test]
    fn prompt_is_a_list_of_known_values() {
        for (prompt, sent) in [
            ("login", "login"),
            ("login consent", "login consent"),
            (" consent  select_account ", "consent select_account"),
            ("none", "none"),
        ] {
            assert_eq!(
                prompt_values(prompt).ok().as_deref(),
                Some(sent),
                "{prompt}"
            );
        }
        for refused in [
            "",
            " ",
            "none login",
            "login none",
            "login login",
            "Login",
            "x",
        ] {
            assert!(prompt_values(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn the_handle_is_the_text_after_the_last_bar() {
        assert_eq!(handle_of("abc|def|ghi"), "ghi");
        assert_eq!(handle_of("plain"), "plain");
    }
}
