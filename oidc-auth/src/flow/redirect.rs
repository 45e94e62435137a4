//! Redirect URI allow-lists: login (configured URIs plus loopback URIs on any port, RFC 8252)
//! and post-logout (configured URIs only, exact match).

use url::{Host, Url};

use crate::error::AuthError;

fn refused(what: &str) -> AuthError {
    AuthError::oauth(
        "invalid_request",
        format!("{what} is not an allowed redirect URI"),
    )
}

/// Parses `raw` and insists that it is already in canonical form: a value that a URL parser
/// would rewrite (encoded or doubled slashes, backslashes, whitespace, user info, a host in
/// another case) is refused instead of being interpreted.
pub(crate) fn canonical(raw: &str) -> Option<Url> {
    if raw.len() > 2048 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.as_str() == raw;
    ok.then_some(url)
}

fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Domain(d)) => d == "localhost",
            // The loopback literals of RFC 8252 section 7.3, not the rest of 127.0.0.0/8.
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            None => false,
        }
}

/// Checks a login `redirect_uri`: one of `allowed` exactly, or a loopback URI on any port.
pub(crate) fn check_login(raw: &str, allowed: &[Url]) -> Result<Url, AuthError> {
    let url = canonical(raw).ok_or_else(|| refused("redirect_uri"))?;
    if allowed.iter().any(|a| a.as_str() == raw) || is_loopback(&url) {
        Ok(url)
    } else {
        Err(refused("redirect_uri"))
    }
}

/// Checks a `post_logout_redirect_uri`: one of `allowed`, compared exactly.
pub(crate) fn check_logout(raw: &str, allowed: &[Url]) -> Result<Url, AuthError> {
    let url = canonical(raw).ok_or_else(|| refused("post_logout_redirect_uri"))?;
    if allowed.iter().any(|a| a.as_str() == raw) {
        Ok(url)
    } else {
        Err(refused("post_logout_redirect_uri"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Url> {
        ["https://app.example.com/callback"]
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .collect()
    }

    #[test]
    fn loopback_on_any_port_and_configured_uris_are_accepted() {
        for ok in [
            "http://localhost:53100/callback",
            "http://127.0.0.1:8080/callback",
            "http://[::1]:1234/cb",
            "https://app.example.com/callback",
        ] {
            assert!(check_login(ok, &allowed()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn foreign_lookalike_and_tricky_uris_are_refused() {
        for bad in [
            "https://evil.example.com/callback",
            "https://app.example.com.evil.com/callback",
            "https://app.example.com/callback/../x",
            "https://app.example.com/callback?x=1",
            "https://APP.example.com/callback",
            "https://user@app.example.com/callback",
            "http://localhost@evil.com/callback",
            "http://localhost:53100\\@evil.com/",
            "http://localhost%2f@evil.com/",
            " http://localhost:53100/callback",
            "http://localhost:53100/call back",
            "https://localhost:53100/callback",
            "http://localhost.evil.com/callback",
            "http://127.0.0.2:53100/callback",
            "http://[::ffff:127.0.0.1]:53100/callback",
            "http://0.0.0.0:53100/callback",
            "javascript:alert(1)",
            "data:text/html,hi",
            "//evil.com/callback",
            "",
        ] {
            assert!(check_login(bad, &allowed()).is_err(), "{bad}");
        }
    }

    #[test]
    fn logout_requires_an_exact_match() {
        assert!(check_logout("https://app.example.com/callback", &allowed()).is_ok());
        for bad in [
            "https://app.example.com/callback/",
            "https://app.example.com/callbackx",
            "https://app.example.com/Callback",
            "https://app.example.com/x/../callback",
            "http://localhost:53100/callback",
        ] {
            assert!(check_logout(bad, &allowed()).is_err(), "{bad}");
        }
    }
}
