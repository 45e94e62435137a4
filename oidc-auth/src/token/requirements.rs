//! Scope and claim requirements checked against a validated token.

use serde_json::Value;

use crate::error::{AuthError, ErrorKind};
use crate::policy::{ClaimConstraint, ClaimRule};
use crate::token::IdToken;

/// Every scope in `required` must be granted as a whole word.
pub(crate) fn check_scopes(token: &IdToken, required: &[&str]) -> Result<(), AuthError> {
    if required.is_empty() {
        return Ok(());
    }
    if required.iter().all(|r| token.has_scope(r)) {
        Ok(())
    } else {
        Err(AuthError::insufficient_scope(required))
    }
}

/// Whether the claim value satisfies `accept`: a list containing an accepted value, or (when
/// allowed, and always for booleans and numbers) a scalar equal to one.
fn holds(value: Option<&Value>, string_as_list: bool, accept: impl Fn(&Value) -> bool) -> bool {
    match value {
        Some(Value::Array(items)) => items.iter().any(accept),
        Some(v @ Value::String(_)) => string_as_list && accept(v),
        Some(v @ (Value::Bool(_) | Value::Number(_))) => accept(v),
        _ => false,
    }
}

fn denied() -> AuthError {
    AuthError::new(
        ErrorKind::Forbidden,
        "the token does not satisfy a required claim",
    )
}

/// Every rule must hold.
pub(crate) fn check_rules(
    token: &IdToken,
    rules: &[ClaimRule],
    string_as_list: bool,
) -> Result<(), AuthError> {
    for rule in rules {
        let value = token.claim(rule.path);
        let accept = |v: &Value| rule.values.iter().any(|a| a.matches(v));
        if !holds(value, string_as_list, accept) {
            if !string_as_list && holds(value, true, accept) {
                string_claim_hint(rule.path);
            }
            return Err(denied());
        }
    }
    Ok(())
}

/// Says, once per process at WARN and at DEBUG after that, that a required claim was a string
/// equal to an accepted value, which would have matched were strings taken as lists: a
/// deployment whose provider sends `"hd": "example.com"` would otherwise see only 403s. The
/// claim's name is logged, never its value.
fn string_claim_hint(path: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    const HINT: &str = "a required claim is a string, which matches nothing unless string_claims_as_lists is set (OIDC_STRING_CLAIMS_AS_LISTS)";
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::debug!(claim = path, "{HINT}");
    } else {
        tracing::warn!(claim = path, "{HINT}");
    }
}

/// Every configured constraint must hold.
pub(crate) fn check_constraints(
    token: &IdToken,
    constraints: &[ClaimConstraint],
    string_as_list: bool,
) -> Result<(), AuthError> {
    for c in constraints {
        let value = token.claim(c.path());
        let accept = |v: &Value| !v.is_array() && !v.is_object() && c.values().contains(v);
        if !holds(value, string_as_list, accept) {
            if !string_as_list && holds(value, true, accept) {
                string_claim_hint(c.path());
            }
            return Err(denied());
        }
    }
    Ok(())
}
