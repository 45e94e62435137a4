//! Parsing of a compact JWS, strictly and with bounded work, before any key is touched.
//!
//! Only what a signed JWT needs is accepted: three base64url segments without padding, a JSON
//! object header with an accepted asymmetric `alg`, and a JSON object payload. Headers that ask
//! for anything more (`crit`, `zip`, `enc`, `cty`, `b64`) are refused; key-carrying headers
//! (`jwk`, `jku`, `x5u`, `x5c`) are ignored, never fetched or trusted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::error::AuthError;

/// Longest `kid` looked up; longer ones are refused before any lookup.
const MAX_KID_LEN: usize = 256;

/// A parsed, not yet verified, JWS. Its `Debug` shows the algorithm and key id only: the
/// signed part and the signature together are the bearer token.
pub(crate) struct Jws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) signature: Vec<u8>,
}

impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What a token is presented as; decides which `typ` headers are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenUse {
    /// A bearer access token: `typ` absent, `JWT` or `at+jwt`.
    Access,
    /// An ID token: `typ` absent or `JWT` (an `at+jwt` access token is not an ID token).
    Id,
}

/// Parses `token` (at most `max_len` bytes) into its parts.
pub(crate) fn parse<'a>(
    token: &'a str,
    max_len: usize,
    accepted: &[Algorithm],
) -> Result<Jws<'a>, AuthError> {
    parse_for(token, max_len, accepted, TokenUse::Access)
}

/// Parses `token` presented as `token_use`.
pub(crate) fn parse_for<'a>(
    token: &'a str,
    max_len: usize,
    accepted: &[Algorithm],
    token_use: TokenUse,
) -> Result<Jws<'a>, AuthError> {
    // Size first, so that no later step (split, decode, parse) sees an unbounded input.
    if token.is_empty() || token.len() > max_len {
        return Err(AuthError::invalid("the token is empty or too long"));
    }
    // No separate alphabet check: base64url decoding of each segment refuses any other byte.
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::invalid("the token is not a compact JWS"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(AuthError::invalid("the token is not a compact JWS"));
    }
    let header: Map<String, Value> = decode_object(header)?;
    let (alg, kid) = check_header(&header, accepted, token_use)?;
    let claims = decode_object(payload)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AuthError::invalid("the token is not a compact JWS"))?;
    let signing_input = &token.as_bytes()[..token.len() - signature_len(token)];
    Ok(Jws {
        alg,
        kid,
        claims,
        signing_input,
        signature,
    })
}

impl Jws<'_> {
    /// What a signature check needs of this token.
    pub(crate) fn signed(&self) -> crate::provider::Signed<'_> {
        crate::provider::Signed {
            kid: self.kid.as_deref(),
            alg: self.alg,
            message: self.signing_input,
            signature: &self.signature,
        }
    }
}

fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::invalid("the token is not a compact JWS"))?;
    // serde_json refuses invalid UTF-8, a BOM, trailing data and nesting deeper than 128.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::invalid("the token is not a compact JWS")),
    }
}

fn check_header(
    header: &Map<String, Value>,
    accepted: &[Algorithm],
    token_use: TokenUse,
) -> Result<(Algorithm, Option<String>), AuthError> {
    for refused in ["crit", "zip", "enc", "cty", "b64"] {
        if header.contains_key(refused) {
            return Err(AuthError::invalid(
                "the token header uses an unsupported extension",
            ));
        }
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| accepted.contains(a))
        .ok_or_else(|| AuthError::invalid("the token algorithm is not accepted"))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => {
            Some(kid.clone())
        }
        Some(_) => return Err(AuthError::invalid("the token key id is malformed")),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if is_token_type(typ, token_use) => {}
        Some(_) => return Err(AuthError::invalid("the token type is not an access token")),
    }
    Ok((alg, kid))
}

/// `typ` values of a bearer access token: plain JWT or RFC 9068 `at+jwt`. Logout tokens,
/// security events and the like are refused.
fn is_token_type(typ: &str, token_use: TokenUse) -> bool {
    // Media types are case-insensitive (RFC 2045 section 5.1), the `application/` prefix too.
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("jwt")
        || (token_use == TokenUse::Access && typ.eq_ignore_ascii_case("at+jwt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    fn err(token: &str) -> AuthError {
        match parse(token, 8192, &Algorithm::ALL) {
            Ok(_) => panic!("accepted {token}"),
            Err(e) => e,
        }
    }

    /// SECURITY G1: neither the parsed token nor what a signature check gets of it shows the
    /// signed part, the claims or the signature when formatted with `Debug`.
    #[test]
    fn debug_of_a_parsed_token_shows_no_part_of_it() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"sub":"alice-secret-subject"}"#,
        );
        let Ok(jws) = parse(&t, 8192, &Algorithm::ALL) else {
            panic!("parses");
        };
        let signed = crate::provider::Signed {
            kid: jws.kid.as_deref(),
            alg: jws.alg,
            message: jws.signing_input,
            signature: &jws.signature,
        };
        for shown in [format!("{jws:?}"), format!("{signed:?}")] {
            assert!(shown.contains("k1") && shown.contains("RS256"), "{shown}");
            for part in t.split('.') {
                assert!(!shown.contains(part), "{shown}");
            }
            assert!(
                !shown.contains("alice") && !shown.contains("115, 105, 103"),
                "{shown}"
            );
        }
    }

    #[test]
    fn alg_none_in_any_case_is_refused() {
        for alg in ["none", "None", "NONE", "HS256", "RS1", ""] {
            let e = err(&token(&format!(r#"{{"alg":"{alg}"}}"#), r#"{"sub":"a"}"#));
            assert_eq!(e.status(), 401);
        }
    }

    #[test]
    fn crit_zip_and_b64_headers_are_refused() {
        for h in [
            r#"{"alg":"RS256","crit":["x-foo"],"x-foo":1}"#,
            r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","crit":"b64"}"#,
            r#"{"alg":"RS256","zip":"DEF"}"#,
            r#"{"alg":"RS256","cty":"JWT"}"#,
            r#"{"alg":"RS256","enc":"A128GCM"}"#,
        ] {
            err(&token(h, r#"{"sub":"a"}"#));
        }
    }

    #[test]
    fn wrong_segment_counts_are_refused() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            "a.b.",
            ".b.c",
            "a..c",
        ] {
            err(t);
        }
        err(&".".repeat(100_000));
    }

    #[test]
    fn non_object_json_is_refused() {
        for payload in ["[]", "1", "\"x\"", "null", "{\"a\":1} x", "\u{feff}{}"] {
            err(&token(r#"{"alg":"RS256"}"#, payload));
        }
        err(&format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            b64("s")
        ));
    }

    #[test]
    fn non_string_kid_is_refused() {
        for kid in ["1", "{}", "null", "[]"] {
            err(&token(&format!(r#"{{"alg":"RS256","kid":{kid}}}"#), "{}"));
        }
        err(&token(
            &format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(300)),
            "{}",
        ));
    }

    #[test]
    fn logout_token_type_is_refused() {
        err(&token(r#"{"alg":"RS256","typ":"logout+jwt"}"#, "{}"));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let payload = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let t = token(r#"{"alg":"RS256"}"#, &format!("{{\"a\":{payload}}}"));
        assert!(parse(&t, usize::MAX, &Algorithm::ALL).is_err());
    }

    #[test]
    fn a_well_formed_token_parses() {
        let t = token(
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#,
            r#"{"sub":"a"}"#,
        );
        let jws = parse(&t, 8192, &Algorithm::ALL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jws.alg, Algorithm::ES256);
        assert_eq!(jws.kid.as_deref(), Some("k1"));
        assert_eq!(jws.signature, b"sig");
        assert_eq!(
            jws.signing_input,
            t.rsplit_once('.')
                .map(|(a, _)| a)
                .unwrap_or_default()
                .as_bytes()
        );
    }
}
