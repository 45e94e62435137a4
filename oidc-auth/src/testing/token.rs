//! [`TokenBuilder`]: mints compact JWS tokens signed by the mock provider's keys.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::keys::{SigningKey, b64};
use super::provider::Shared;

/// Default token lifetime in seconds.
const DEFAULT_LIFETIME: i64 = 3600;

/// Builds a signed JWT; get one from [`MockProvider::token`](super::MockProvider::token).
///
/// Defaults: header `{"alg": <current key's alg>, "typ": "JWT", "kid": <current kid>}`, claims
/// `{"iss": <issuer>, "sub": "alice", "iat": <now>, "exp": <now + 3600>}`. There is no `aud`
/// until [`audience`](Self::audience) is called.
///
/// The signature is always made with the selected key's own algorithm, whatever the `alg`
/// header says, so `header("alg", ..)` produces algorithm-confusion tokens.
///
/// ```
/// use oidc_auth::testing::MockProvider;
/// use serde_json::json;
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockProvider::start().await?;
/// let token = provider
///     .token()
///     .sub("bob")
///     .audience("my-api")
///     .scope("read write")
///     .claim("email", json!("bob@example.com"))
///     .expires_in(300)
///     .sign();
/// assert_eq!(token.split('.').count(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a TokenBuilder does nothing until `sign` is called"]
pub struct TokenBuilder {
    shared: Arc<Shared>,
    key: Arc<SigningKey>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("signing_kid", &self.key.kid())
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        let key = shared.keys().current();
        let now = unix_now();
        let mut header = Map::new();
        header.insert("alg".into(), key.alg().as_str().into());
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), key.kid().into());
        let mut claims = Map::new();
        claims.insert("iss".into(), shared.issuer().into());
        claims.insert("sub".into(), "alice".into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(DEFAULT_LIFETIME).into());
        Self {
            shared,
            key,
            header,
            claims,
        }
    }

    /// Sets the `sub` claim.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let token = provider.token().sub("bob").sign();
    /// # }
    /// ```
    #[allow(
        clippy::should_implement_trait,
        reason = "named after the `sub` claim; a token builder is not a number"
    )]
    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", Value::from(sub))
    }

    /// Adds an audience: the first call sets `aud` to a string, later calls turn it into an
    /// array and append.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// // "aud": ["api-a", "api-b"]
    /// let token = provider.token().audience("api-a").audience("api-b").sign();
    /// # }
    /// ```
    pub fn audience(mut self, aud: &str) -> Self {
        let aud = Value::from(aud);
        let merged = match self.claims.remove("aud") {
            Some(Value::String(first)) => Value::Array(vec![Value::String(first), aud]),
            Some(Value::Array(mut all)) => {
                all.push(aud);
                Value::Array(all)
            }
            _ => aud,
        };
        self.claims.insert("aud".into(), merged);
        self
    }

    /// Sets the `scope` claim (space-separated scopes, replacing any earlier value).
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let token = provider.token().scope("openid profile admin").sign();
    /// # }
    /// ```
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", Value::from(scope))
    }

    /// Sets any claim, replacing an earlier value.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// use serde_json::json;
    ///
    /// let token = provider.token().claim("groups", json!(["admins"])).sign();
    /// # }
    /// ```
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Removes a claim, defaults included (for example `exp`).
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let never_expires = provider.token().remove_claim("exp").sign();
    /// # }
    /// ```
    pub fn remove_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a JOSE header field. Changing `alg` does not change how the token is signed.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// use serde_json::json;
    ///
    /// let wrong_type = provider.token().header("typ", json!("at+jwt")).sign();
    /// # }
    /// ```
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.to_owned(), value);
        self
    }

    /// Removes a JOSE header field, defaults included (for example `kid`).
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let no_kid = provider.token().remove_header("kid").sign();
    /// # }
    /// ```
    pub fn remove_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Sets `exp` to `iat + secs` (`secs` may be negative for an already expired token). Without
    /// a numeric `iat`, the current time is used instead.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let expired = provider.token().expires_in(-120).sign();
    /// # }
    /// ```
    pub fn expires_in(self, secs: i64) -> Self {
        let iat = self
            .claims
            .get("iat")
            .and_then(Value::as_i64)
            .unwrap_or_else(unix_now);
        self.claim("exp", Value::from(iat.saturating_add(secs)))
    }

    /// Sets `iat` to this Unix time and moves `exp` along with it, so the token keeps its
    /// lifetime (call [`expires_in`](Self::expires_in) afterwards to change that). If `iat` or
    /// `exp` is missing or not a number, only `iat` is set.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// // Issued one hour in the future, valid for the default hour after that.
    /// let now = std::time::SystemTime::now()
    ///     .duration_since(std::time::UNIX_EPOCH)
    ///     .map_or(0, |d| d.as_secs() as i64);
    /// let from_the_future = provider.token().issued_at(now + 3600).sign();
    /// # }
    /// ```
    pub fn issued_at(self, unix: i64) -> Self {
        let old_iat = self.claims.get("iat").and_then(Value::as_i64);
        let exp = self.claims.get("exp").and_then(Value::as_i64);
        let this = self.claim("iat", Value::from(unix));
        match (old_iat, exp) {
            (Some(old_iat), Some(exp)) => {
                let lifetime = exp.saturating_sub(old_iat);
                this.claim("exp", Value::from(unix.saturating_add(lifetime)))
            }
            _ => this,
        }
    }

    /// Signs with the key `kid` (published or retired) and sets the `kid` and `alg` headers to
    /// match it. If no key has that kid, the header still says `kid` but the token is signed
    /// with the key selected before: a token whose key cannot be found.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// use oidc_auth::testing::SigningAlg;
    ///
    /// let spare = provider.add_key(SigningAlg::ES384);
    /// let token = provider.token().kid(&spare).sign();
    /// let unknown = provider.token().kid("no-such-key").sign();
    /// # }
    /// ```
    pub fn kid(mut self, kid: &str) -> Self {
        let found = self.shared.keys().get(kid);
        if let Some(key) = found {
            self.header.insert("alg".into(), key.alg().as_str().into());
            self.key = key;
        }
        self.header("kid", Value::from(kid))
    }

    /// Signs and returns the compact JWS `b64url(header).b64url(claims).b64url(signature)`,
    /// base64url without padding.
    ///
    /// ```no_run
    /// # fn f(provider: oidc_auth::testing::MockProvider) {
    /// let token: String = provider.token().sign();
    /// # }
    /// ```
    #[must_use]
    pub fn sign(self) -> String {
        let header = Value::Object(self.header).to_string();
        let claims = Value::Object(self.claims).to_string();
        compact(&self.key, header.as_bytes(), claims.as_bytes())
    }
}

/// Signs `claims` as they are (no defaults) with the current key, or with `kid` as
/// [`TokenBuilder::kid`] would.
pub(super) fn sign_claims(
    shared: &Arc<Shared>,
    kid: Option<&str>,
    claims: Map<String, Value>,
) -> String {
    let mut builder = TokenBuilder::new(Arc::clone(shared));
    if let Some(kid) = kid {
        builder = builder.kid(kid);
    }
    builder.claims = claims;
    builder.sign()
}

/// `b64url(header).b64url(payload).b64url(sig)` with `key`'s own algorithm.
pub(super) fn compact(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64(&signature));
    token
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}
