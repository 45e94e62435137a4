//! What a protected route requires: scopes and claim constraints.
//!
//! `#[oidc::required(...)]` generates a hidden type implementing [`Policy`]; the same can be
//! written by hand:
//!
//! ```
//! use oidc_auth::{ClaimRule, ClaimValue, Policy};
//!
//! struct Admins;
//! impl Policy for Admins {
//!     const SCOPES: &'static [&'static str] = &["admin"];
//!     const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new("groups", &[ClaimValue::Str("admins")])];
//! }
//! ```

use serde_json::Value;

/// The requirements of one protected route, known at compile time.
///
/// Every scope in [`SCOPES`](Policy::SCOPES) must be granted, and every rule in
/// [`CLAIMS`](Policy::CLAIMS) must hold.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an oidc-auth policy",
    note = "use `#[oidc::required(...)]` to generate one, or implement `oidc_auth::Policy`"
)]
pub trait Policy: Send + Sync + 'static {
    /// Scopes that must all be present in the token's `scope` or `scp` claim.
    const SCOPES: &'static [&'static str] = &[];
    /// Claim rules that must all hold.
    const CLAIMS: &'static [ClaimRule] = &[];
}

/// An application's scopes, declared once as an enum with
/// [`#[derive(Scopes)]`](macro@crate::Scopes), which implements this trait: handlers then name a
/// scope as a variant (`scopes = [AppScope::Admin]`).
///
/// The derive adds nothing else to the enum, so its own inherent items (an `as_str` of its
/// own, say) stay as they are; import this trait to use these. A hand-written implementation
/// is fine to use on its own, but `scopes = [Enum::Variant]` takes only a derived one: the
/// macros find a variant's scope by its position in [`ALL`](Self::ALL), which only the derive
/// guarantees to follow the variants.
///
/// ```
/// use oidc_auth::Scopes;
///
/// #[derive(Scopes)]
/// enum AppScope {
///     Admin,
///     #[scope("billing:write")]
///     Billing,
/// }
///
/// assert_eq!(AppScope::ALL, ["admin", "billing:write"]);
/// assert_eq!(AppScope::Billing.as_str(), "billing:write");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare scopes",
    note = "add `#[derive(oidc_auth::Scopes)]` to `{Self}`, or write the scope as a string"
)]
pub trait Scopes {
    /// Every declared scope, in declaration order (the order of the variants).
    const ALL: &'static [&'static str];

    /// The scope token this variant stands for.
    fn as_str(&self) -> &'static str;
}

/// The policy that requires nothing beyond a valid token.
///
/// ```
/// use oidc_auth::{NoPolicy, Policy};
/// assert!(NoPolicy::SCOPES.is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPolicy;

impl Policy for NoPolicy {}

/// A constraint on one claim: the claim at `path` must contain (or equal) one of `values`.
///
/// `path` is a claim name or a dotted path into nested objects (`realm_access.roles`); a claim
/// whose own name contains dots (`https://example.com/roles`) is matched by that whole name
/// first.
///
/// ```
/// use oidc_auth::{ClaimRule, ClaimValue};
/// const OPS: ClaimRule = ClaimRule::new("realm_access.roles", &[ClaimValue::Str("ops"), ClaimValue::Str("sre")]);
/// assert_eq!(OPS.path, "realm_access.roles");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClaimRule {
    /// The claim name or dotted path.
    pub path: &'static str,
    /// Accepted values; any one of them satisfies the rule.
    pub values: &'static [ClaimValue],
}

impl ClaimRule {
    /// A rule for `path` accepting any of `values`.
    pub const fn new(path: &'static str, values: &'static [ClaimValue]) -> Self {
        Self { path, values }
    }
}

/// A value a claim is compared with. Comparison is by JSON type: `Str("true")` never matches the
/// boolean `true`, and `Int(1)` never matches the string `"1"`.
///
/// ```
/// use oidc_auth::ClaimValue;
/// assert!(ClaimValue::Bool(true).matches(&serde_json::json!(true)));
/// assert!(!ClaimValue::Str("true").matches(&serde_json::json!(true)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimValue {
    /// A string, compared byte for byte.
    Str(&'static str),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
}

impl ClaimValue {
    /// Whether `value` is exactly this value.
    pub fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (ClaimValue::Str(s), Value::String(v)) => s == v,
            (ClaimValue::Bool(b), Value::Bool(v)) => b == v,
            (ClaimValue::Int(i), Value::Number(n)) => n.as_i64() == Some(*i),
            _ => false,
        }
    }
}

/// A claim constraint owned at run time: the configuration's default constraints, applied to
/// every protected route.
///
/// ```
/// use oidc_auth::ClaimConstraint;
/// let c = ClaimConstraint::new("groups", ["staff"]);
/// assert_eq!(c.path(), "groups");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimConstraint {
    path: String,
    values: Vec<Value>,
}

impl ClaimConstraint {
    /// A constraint on `path` accepting any of `values`: strings, booleans or integers (a
    /// configuration with any other value is refused when it is built).
    pub fn new<V: Into<Value>>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self {
            path: path.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The claim name or dotted path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The accepted values.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}
