//! [`IdToken`]: the claims of a validated token, typed where standard, raw for the rest.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The claims of a validated bearer token.
///
/// Cheap to clone (one reference count). Standard claims have typed accessors; every claim is
/// reachable through [`claim`](Self::claim) and [`claims`](Self::claims). `Debug` prints only
/// the subject, the issuer and the expiry (`sub`, `iss`, `exp`).
///
/// ```
/// # #[cfg(feature = "testing")] {
/// use oidc_auth::IdToken;
/// let token = IdToken::from_claims(serde_json::json!({
///     "iss": "https://idp.example", "sub": "alice", "exp": 2_000_000_000,
///     "scope": "openid admin", "realm_access": {"roles": ["ops"]},
/// }))
/// .unwrap();
/// assert_eq!(token.sub(), "alice");
/// assert!(token.has_scope("admin"));
/// assert_eq!(token.roles(), vec!["ops"]);
/// # }
/// ```
#[derive(Clone)]
pub struct IdToken(Arc<Inner>);

struct Inner {
    sub: String,
    iss: String,
    aud: Vec<String>,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    claims: Map<String, Value>,
}

impl IdToken {
    /// Builds a token from checked claims. `sub`, `iss` and `exp` must be well-formed.
    pub(crate) fn new(
        claims: Map<String, Value>,
        times: (i64, Option<i64>, Option<i64>),
    ) -> Option<Self> {
        let sub = claims.get("sub")?.as_str()?.to_owned();
        let iss = claims.get("iss")?.as_str()?.to_owned();
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Some(Self(Arc::new(Inner {
            sub,
            iss,
            aud,
            exp: times.0,
            iat: times.1,
            nbf: times.2,
            claims,
        })))
    }

    /// A token from a JSON object of claims, without any signature: for tests and for code that
    /// receives claims validated elsewhere. Returns `None` unless `sub` and `iss` are strings and
    /// `exp` is an integer.
    #[cfg(feature = "testing")]
    pub fn from_claims(claims: Value) -> Option<Self> {
        let Value::Object(claims) = claims else {
            return None;
        };
        let exp = claims.get("exp")?.as_i64()?;
        let iat = claims.get("iat").and_then(Value::as_i64);
        let nbf = claims.get("nbf").and_then(Value::as_i64);
        Self::new(claims, (exp, iat, nbf))
    }

    /// The subject (`sub`).
    pub fn sub(&self) -> &str {
        &self.0.sub
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.iss
    }

    /// The audiences (`aud`, a string or a list in the token).
    pub fn audiences(&self) -> &[String] {
        &self.0.aud
    }

    /// Expiry, Unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.0.exp
    }

    /// Issue time, Unix seconds.
    pub fn issued_at(&self) -> Option<i64> {
        self.0.iat
    }

    /// Not-before time, Unix seconds.
    pub fn not_before(&self) -> Option<i64> {
        self.0.nbf
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.0.claims.get(name).and_then(Value::as_str)
    }

    /// The authorized party (`azp`).
    pub fn azp(&self) -> Option<&str> {
        self.str_claim("azp")
    }

    /// The `scope` claim as sent (space separated).
    pub fn scope(&self) -> Option<&str> {
        self.str_claim("scope")
    }

    /// Every granted scope, from `scope` (space separated) and `scp` (a list or a string).
    pub fn scopes(&self) -> Vec<&str> {
        self.granted().collect()
    }

    /// Whether `scope` is granted, as a whole word (`admin` never matches `administrator`).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.granted().any(|granted| granted == scope)
    }

    /// The granted scopes in the order of [`scopes`](Self::scopes), without collecting them:
    /// a route's scope check allocates nothing.
    fn granted(&self) -> impl Iterator<Item = &str> {
        fn words(s: &str) -> impl Iterator<Item = &str> {
            s.split(' ').filter(|word| !word.is_empty())
        }
        let scope = self.str_claim("scope").into_iter().flat_map(words);
        let (scp_words, scp_list) = match self.0.claims.get("scp") {
            Some(Value::String(s)) => (Some(s.as_str()), None),
            Some(Value::Array(list)) => (None, Some(list)),
            _ => (None, None),
        };
        scope
            .chain(scp_words.into_iter().flat_map(words))
            .chain(scp_list.into_iter().flatten().filter_map(Value::as_str))
    }

    /// `email`.
    pub fn email(&self) -> Option<&str> {
        self.str_claim("email")
    }

    /// `email_verified`, only when it is a JSON boolean.
    pub fn email_verified(&self) -> Option<bool> {
        self.0.claims.get("email_verified").and_then(Value::as_bool)
    }

    /// `preferred_username`.
    pub fn preferred_username(&self) -> Option<&str> {
        self.str_claim("preferred_username")
    }

    /// `name`.
    pub fn name(&self) -> Option<&str> {
        self.str_claim("name")
    }

    /// `given_name`.
    pub fn given_name(&self) -> Option<&str> {
        self.str_claim("given_name")
    }

    /// `family_name`.
    pub fn family_name(&self) -> Option<&str> {
        self.str_claim("family_name")
    }

    fn str_list(value: Option<&Value>) -> Vec<&str> {
        match value {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `groups`, the string entries of the list.
    pub fn groups(&self) -> Vec<&str> {
        Self::str_list(self.0.claims.get("groups"))
    }

    /// `realm_access` (Keycloak), raw.
    pub fn realm_access(&self) -> Option<&Value> {
        self.0.claims.get("realm_access")
    }

    /// `resource_access` (Keycloak), raw.
    pub fn resource_access(&self) -> Option<&Value> {
        self.0.claims.get("resource_access")
    }

    /// Every role, flattened and without duplicates: `roles`, `realm_access.roles` and
    /// `resource_access.<client>.roles`, in that order.
    ///
    /// This includes the roles the user holds in *every* client listed in `resource_access`,
    /// including clients other than this API: a user who is `admin` of an unrelated client
    /// has `admin` here. To check a role of one client, read
    /// [`claim("resource_access.<client>.roles")`](Self::claim) or use
    /// [`roles_of_clients`](Self::roles_of_clients).
    pub fn roles(&self) -> Vec<&str> {
        roles_of(&self.0.claims, true, None)
    }

    /// Like [`roles`](Self::roles), but of `resource_access` only the roles held in `clients`.
    ///
    /// ```
    /// # #[cfg(feature = "testing")] {
    /// use oidc_auth::IdToken;
    /// use serde_json::json;
    ///
    /// let token = IdToken::from_claims(json!({
    ///     "sub": "u1", "iss": "https://idp.example", "exp": 2_000_000_000,
    ///     "realm_access": {"roles": ["user"]},
    ///     "resource_access": {"api": {"roles": ["reader"]}, "billing": {"roles": ["admin"]}},
    /// }))
    /// .unwrap();
    /// assert_eq!(token.roles_of_clients(&["api"]), vec!["user", "reader"]);
    /// assert_eq!(token.roles(), vec!["user", "reader", "admin"]);
    /// # }
    /// ```
    pub fn roles_of_clients(&self, clients: &[&str]) -> Vec<&str> {
        roles_of(&self.0.claims, true, Some(clients))
    }

    /// The claim at `path`: a claim name, or a dotted path into nested objects. A claim whose own
    /// name contains dots is found by that whole name first.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        claim_at(&self.0.claims, path)
    }

    /// Every claim of the token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }
}

/// `roles` (with `top_level`), `realm_access.roles` and `resource_access.<client>.roles` of
/// `claims`, flattened, in that order, without duplicates. With `only`, the roles of the clients
/// it names (in the token's order); without, those of every client.
pub(crate) fn roles_of<'a>(
    claims: &'a Map<String, Value>,
    top_level: bool,
    only: Option<&[&str]>,
) -> Vec<&'a str> {
    let mut out = if top_level {
        IdToken::str_list(claims.get("roles"))
    } else {
        Vec::new()
    };
    out.extend(IdToken::str_list(
        claims.get("realm_access").and_then(|r| r.get("roles")),
    ));
    if let Some(Value::Object(clients)) = claims.get("resource_access") {
        for (name, client) in clients {
            if only.is_none_or(|only| only.contains(&name.as_str())) {
                out.extend(IdToken::str_list(client.get("roles")));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(*r));
    out
}

/// The string entries of `groups` in `claims`.
pub(crate) fn groups_of(claims: &Map<String, Value>) -> Vec<&str> {
    IdToken::str_list(claims.get("groups"))
}

/// Resolves a claim path: the whole path as a name first, then dotted segments.
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut segments = path.split('.');
    let mut current = claims.get(segments.next()?)?;
    for segment in segments {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field("sub", &self.0.sub)
            .field("iss", &self.0.iss)
            .field("exp", &self.0.exp)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::IdToken;

    fn token(claims: Value) -> IdToken {
        let Value::Object(mut claims) = claims else {
            panic!("claims are an object");
        };
        claims.insert("sub".into(), json!("alice"));
        claims.insert("iss".into(), json!("https://idp.example"));
        IdToken::new(claims, (i64::MAX / 2, None, None)).unwrap_or_else(|| panic!("valid claims"))
    }

    /// Scopes come from `scope` (space separated) and `scp` (a list, whose other entries count
    /// for nothing, or a space-separated string), as whole words, and `has_scope` agrees with
    /// `scopes` without collecting them.
    #[test]
    fn granted_scopes_are_whole_words_of_scope_and_scp() {
        for (claims, granted) in [
            (json!({"scope": " read  write "}), vec!["read", "write"]),
            (
                json!({"scope": "read", "scp": ["admin", 1, null, "ops team"]}),
                vec!["read", "admin", "ops team"],
            ),
            (json!({"scp": "a  b"}), vec!["a", "b"]),
            (json!({"scope": 7, "scp": {"admin": true}}), vec![]),
            (json!({}), vec![]),
        ] {
            let token = token(claims.clone());
            assert_eq!(token.scopes(), granted, "{claims}");
            for scope in [
                "read", "write", "admin", "ops team", "ops", "a", "b", "", "adm",
            ] {
                assert_eq!(
                    token.has_scope(scope),
                    granted.contains(&scope),
                    "{claims}: {scope:?}"
                );
            }
        }
    }
}
