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
    let granted = token.scopes();
    if required.iter().all(|r| granted.contains(r)) {
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
        if !holds(value, string_as_list, |v| {
            rule.values.iter().any(|a| a.matches(v))
        }) {
            return Err(denied());
        }
    }
    Ok(())
}

/// Every configured constraint must hold.
pub(crate) fn check_constraints(
    token: &IdToken,
    constraints: &[ClaimConstraint],
    string_as_list: bool,
) -> Result<(), AuthError> {
    for c in constraints {
        let value = token.claim(c.path());
        if !holds(value, string_as_list, |v| {
            !v.is_array() && !v.is_object() && c.values().contains(v)
        }) {
            return Err(denied());
        }
    }
    Ok(())
}
