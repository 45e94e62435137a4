//! Registered claims (RFC 7519 section 4.1): `exp`, `nbf`, `iat`, `iss`, `aud`, `sub`.

use serde_json::{Map, Value};

use crate::error::AuthError;

/// Largest NumericDate accepted: 2^53, beyond which a JSON number loses integer precision.
const MAX_NUMERIC_DATE: i64 = 1 << 53;

/// What the registered claims are checked against.
#[derive(Debug)]
pub(crate) struct Expectations<'a> {
    pub(crate) now: i64,
    pub(crate) leeway: i64,
    pub(crate) issuer: &'a str,
    pub(crate) audience: Option<&'a str>,
}

/// The checked times: `exp`, `iat`, `nbf`.
pub(crate) type Times = (i64, Option<i64>, Option<i64>);

/// Checks every registered claim; returns the times.
pub(crate) fn check(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<Times, AuthError> {
    let exp = numeric_date(claims.get("exp"), Round::Down)?
        .ok_or_else(|| AuthError::invalid("the token has no expiry"))?;
    if expect.now >= exp.saturating_add(expect.leeway) {
        return Err(AuthError::invalid("the token has expired"));
    }
    let nbf = numeric_date(claims.get("nbf"), Round::Up)?;
    if nbf.is_some_and(|nbf| nbf > expect.now.saturating_add(expect.leeway)) {
        return Err(AuthError::invalid("the token is not valid yet"));
    }
    let iat = numeric_date(claims.get("iat"), Round::Up)?;
    if iat.is_some_and(|iat| iat > expect.now.saturating_add(expect.leeway)) {
        return Err(AuthError::invalid("the token was issued in the future"));
    }
    check_issuer(claims, expect.issuer)?;
    check_audience(claims, expect.audience)?;
    // A Security Event Token (RFC 8417), such as an OpenID back-channel logout token, carries
    // `events` and may come untyped or typed `JWT`: it is never a bearer or ID token.
    if claims.contains_key("events") {
        return Err(AuthError::invalid(
            "the token is a security event token, not an access or ID token",
        ));
    }
    // Whitespace alone names no one, and would be a different subject from whatever a display
    // or a trimming database made of it.
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => {}
        _ => return Err(AuthError::invalid("the token has no subject")),
    }
    Ok((exp, iat, nbf))
}

/// Refuses, as a bearer access token, a token that shows itself to be an ID token: one with
/// `at_hash` or `c_hash`, claims OpenID Connect Core defines for ID tokens only (an access
/// token cannot carry a hash of itself), with a `typ` claim of `ID`, as Keycloak's ID tokens
/// have (its access tokens say `Bearer`), or with a `token_use` of `id`, as Amazon Cognito's
/// (its access tokens say `access`). Where the configured audience is the client id, an ID
/// token's `aud` matches it, and this is what tells the two apart (RFC 8725 section 3.11).
pub(crate) fn check_not_id_token(claims: &Map<String, Value>) -> Result<(), AuthError> {
    let says_id = |name: &str| matches!(claims.get(name), Some(Value::String(value)) if value.eq_ignore_ascii_case("id"));
    if says_id("typ")
        || says_id("token_use")
        || claims.contains_key("at_hash")
        || claims.contains_key("c_hash")
    {
        return Err(AuthError::invalid(
            "the token is an ID token, not an access token",
        ));
    }
    Ok(())
}

/// Checks only `iss`, before any key is fetched: a token of another issuer causes no request.
pub(crate) fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), AuthError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        _ => Err(AuthError::invalid("the token issuer is not trusted")),
    }
}

fn check_audience(claims: &Map<String, Value>, audience: Option<&str>) -> Result<(), AuthError> {
    let aud = claims.get("aud");
    let Some(expected) = audience else {
        // Not configured: only the shape is checked.
        return match aud {
            None | Some(Value::String(_)) => Ok(()),
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => Ok(()),
            Some(_) => Err(AuthError::invalid("the token audience is malformed")),
        };
    };
    let ok = match aud {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(list)) => {
            list.iter().all(Value::is_string) && list.iter().any(|a| a.as_str() == Some(expected))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "the token is not meant for this audience",
        ))
    }
}

/// Which way a fractional NumericDate is rounded to whole seconds: always towards refusal, so
/// a fraction never buys a token time (`exp` down, `nbf` and `iat` up).
#[derive(Clone, Copy, Debug)]
enum Round {
    Down,
    Up,
}

/// A NumericDate: a JSON number, integral or not, in `0..=2^53`. Strings, booleans, null and
/// out-of-range numbers are refused rather than coerced. A fractional number must be below
/// 2^53, where every float is still exact to the second (larger literals such as
/// `9007199254740992.5` read as 2^53 exactly), and is rounded as `round` says.
fn numeric_date(value: Option<&Value>, round: Round) -> Result<Option<i64>, AuthError> {
    let Some(value) = value else { return Ok(None) };
    let bad = || AuthError::invalid("a token time claim is malformed");
    let Value::Number(n) = value else {
        return Err(bad());
    };
    let secs = if let Some(i) = n.as_i64() {
        i
    } else if let Some(f) = n.as_f64() {
        if !f.is_finite() || f < 0.0 || f >= MAX_NUMERIC_DATE as f64 {
            return Err(bad());
        }
        match round {
            Round::Down => f.floor() as i64,
            Round::Up => f.ceil() as i64,
        }
    } else {
        return Err(bad());
    };
    if !(0..=MAX_NUMERIC_DATE).contains(&secs) {
        return Err(bad());
    }
    Ok(Some(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn expect(audience: Option<&'static str>) -> Expectations<'static> {
        Expectations {
            now: NOW,
            leeway: 60,
            issuer: "https://idp",
            audience,
        }
    }

    fn run(claims: Value, audience: Option<&'static str>) -> Result<Times, AuthError> {
        let Value::Object(map) = claims else {
            panic!("claims must be an object")
        };
        check(&map, &expect(audience))
    }

    fn base() -> Value {
        json!({"iss": "https://idp", "sub": "alice", "exp": NOW + 600})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn exp_is_required_and_typed() {
        let mut v = base();
        v.as_object_mut().map(|m| m.remove("exp"));
        assert!(run(v, None).is_err());
        for bad in [
            json!("never"),
            json!("99999999999"),
            json!(true),
            json!(null),
            json!(-1),
            json!(1u64 << 60),
            json!(1e300),
        ] {
            assert!(run(with("exp", bad.clone()), None).is_err(), "{bad}");
            assert!(run(with("nbf", bad.clone()), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn exp_boundaries_follow_the_leeway() {
        assert!(run(with("exp", json!(NOW - 61)), None).is_err());
        assert!(run(with("exp", json!(NOW - 60)), None).is_err());
        assert!(run(with("exp", json!(NOW - 59)), None).is_ok());
        let strict = Expectations {
            leeway: 0,
            ..expect(None)
        };
        let Value::Object(m) = with("exp", json!(NOW)) else {
            return;
        };
        assert!(check(&m, &strict).is_err());
    }

    #[test]
    fn nbf_and_iat_follow_the_leeway() {
        assert!(run(with("nbf", json!(NOW + 61)), None).is_err());
        assert!(run(with("nbf", json!(NOW + 59)), None).is_ok());
        assert!(run(with("iat", json!(NOW + 3600)), None).is_err());
    }

    /// A fraction is rounded towards refusal: `nbf`/`iat` half a second past the leeway are
    /// refused, `exp` half a second inside it counts as the second before.
    #[test]
    fn fractional_times_round_towards_refusal() {
        assert!(run(with("nbf", json!(NOW as f64 + 60.5)), None).is_err());
        assert!(run(with("nbf", json!(NOW as f64 + 60.001)), None).is_err());
        assert!(run(with("iat", json!(NOW as f64 + 60.5)), None).is_err());
        assert!(run(with("nbf", json!(NOW as f64 + 59.5)), None).is_ok());
        let times = run(with("exp", json!(NOW as f64 + 600.9)), None).ok();
        assert_eq!(times.map(|t| t.0), Some(NOW + 600));
        assert!(run(with("exp", json!(NOW as f64 - 59.5)), None).is_err());
    }

    /// Floats at or above 2^53 are refused whatever their spelling: `9007199254740992.5` and
    /// `9.007199254740993e15` read as 2^53 exactly, while the integer 2^53 + 1 is refused too.
    #[test]
    fn floats_from_two_to_the_53_are_refused() {
        for literal in [
            "9007199254740992.5",
            "9.007199254740993e15",
            "9007199254740992.0",
        ] {
            let value: Value = serde_json::from_str(literal).unwrap_or(Value::Null);
            assert!(value.is_f64(), "{literal}");
            assert!(run(with("exp", value.clone()), None).is_err(), "{literal}");
            assert!(run(with("nbf", value), None).is_err(), "{literal}");
        }
        assert!(run(with("exp", json!(MAX_NUMERIC_DATE + 1)), None).is_err());
        assert!(run(with("exp", json!(MAX_NUMERIC_DATE)), None).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        for iss in [
            json!("https://idp/"),
            json!("https://IDP"),
            json!(["https://idp"]),
            json!(null),
        ] {
            assert!(run(with("iss", iss), None).is_err());
        }
    }

    #[test]
    fn audience_rules() {
        assert!(run(with("aud", json!("api")), Some("api")).is_ok());
        assert!(run(with("aud", json!(["other", "api"])), Some("api")).is_ok());
        for aud in [
            json!("api-admin"),
            json!("other"),
            json!([]),
            json!(1),
            json!(null),
        ] {
            assert!(run(with("aud", aud), Some("api")).is_err());
        }
        assert!(run(base(), Some("api")).is_err());
    }

    #[test]
    fn sub_must_be_a_non_empty_string() {
        for sub in [
            json!(""),
            json!(1),
            json!(null),
            json!(" "),
            json!("\t\n"),
            json!("\u{3000}"),
        ] {
            assert!(run(with("sub", sub.clone()), None).is_err(), "{sub}");
        }
        for sub in [json!("a"), json!(" a "), json!("0")] {
            assert!(run(with("sub", sub.clone()), None).is_ok(), "{sub}");
        }
    }

    #[test]
    fn id_tokens_are_told_from_access_tokens() {
        let not_id = |claims: Value| match claims {
            Value::Object(map) => check_not_id_token(&map),
            _ => panic!("claims must be an object"),
        };
        for (name, value) in [
            ("at_hash", json!("x")),
            ("c_hash", json!("x")),
            ("at_hash", json!(null)),
            ("typ", json!("ID")),
            ("typ", json!("id")),
            ("token_use", json!("id")),
        ] {
            assert!(
                not_id(with(name, value.clone())).is_err(),
                "{name}: {value}"
            );
        }
        for typ in [json!("Bearer"), json!("IDs"), json!(1)] {
            assert!(not_id(with("typ", typ.clone())).is_ok(), "{typ}");
        }
        assert!(not_id(with("token_use", json!("access"))).is_ok());
        assert!(
            not_id(with("nonce", json!("n"))).is_ok(),
            "Keycloak access tokens may carry it"
        );
        assert!(not_id(base()).is_ok());
    }
}
