//! The checked route spec: well-formed paths, and no two endpoints of one method on the same
//! path.

use super::parse::{ENDPOINTS, RawArgs, Setting};
use crate::diag::Diagnostics;

/// The validated routes.
pub(crate) struct Model {
    /// `None` when a `crate` argument is written but could not be read (it has been reported).
    pub(crate) crate_path: Option<syn::Path>,
    pub(crate) prefix: String,
    /// A `prefix` is written but could not be read (it has been reported).
    pub(crate) prefix_unread: bool,
    /// Per endpoint (in `ENDPOINTS` order): the variant name and its path, `None` if disabled.
    pub(crate) endpoints: Vec<(&'static str, Option<String>)>,
}

/// The HTTP method the endpoint named `key` answers (as `AuthEndpoint::method` says).
fn method(key: &str) -> &'static str {
    match key {
        "token" | "device" | "revoke" => "POST",
        _ => "GET",
    }
}

/// Characters with a meaning in axum's or actix-web's route syntax.
const ROUTE_SYNTAX: &[char] = &[':', '*', '{', '}'];

fn check_path(
    what: &str,
    path: &str,
    span: proc_macro2::Span,
    allow_empty: bool,
    diag: &mut Diagnostics,
) {
    if path.is_empty() && allow_empty {
        return;
    }
    if !path.starts_with('/') {
        diag.error(
            span,
            format!(
                "`#[oidc::auth_router]`: {what} `{path}` must start with `/`: write \"/{}\"",
                path.trim_start_matches('/')
            ),
        );
    } else if path == "/" {
        let message = if allow_empty {
            format!(
                "`#[oidc::auth_router]`: {what} `/` is the root, which is no prefix at all: remove `prefix`"
            )
        } else {
            format!(
                "`#[oidc::auth_router]`: {what} cannot be `/`, the root; give the endpoint a path of its own, such as \"/auth/v2/login\""
            )
        };
        diag.error(span, message);
    } else if path.ends_with('/') {
        diag.error(
            span,
            format!(
                "`#[oidc::auth_router]`: {what} `{path}` must not end with `/`: write \"{}\"",
                path.trim_end_matches('/')
            ),
        );
    } else if path.contains("//")
        || path
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        diag.error(span, format!("`#[oidc::auth_router]`: {what} `{path}` is not a plain path; use segments like \"/auth/v2/login\""));
    } else if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        // Clients resolve dot segments before they send a request (RFC 3986 section 5.2.4),
        // so no request could reach such a route.
        diag.error(
            span,
            format!(
                "`#[oidc::auth_router]`: {what} `{path}` has a `.` or `..` segment, which clients resolve before sending, so no request could reach it"
            ),
        );
    } else if let Some(c) = path.chars().find(|c| ROUTE_SYNTAX.contains(c)) {
        // axum panics at startup on `/:x` and `/*x` and reads `{x}` as a capture; actix reads
        // `{x}` as a capture too, so `/a/{x}` and `/a/{y}` would silently take the same requests.
        diag.error(
            span,
            format!(
                "`#[oidc::auth_router]`: {what} `{path}` contains `{c}`, which the routers read as a path parameter or wildcard; the auth endpoints take fixed paths"
            ),
        );
    } else if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        // Outside RFC 3986 `pchar` a character needs percent-encoding, and then axum matches
        // the encoded form and actix-web the decoded one: the same route, two different URLs.
        diag.error(
            span,
            format!(
                "`#[oidc::auth_router]`: {what} `{}` contains `{}`, which axum matches percent-encoded and actix-web decoded; use only letters, digits and `-._~!$&'()+,;=@` besides `/`",
                path.escape_debug(),
                c.escape_debug()
            ),
        );
    }
}

/// A character a fixed route path may hold as it is: RFC 3986 unreserved, sub-delims, `@` and
/// `/` (`:` and `*` are refused above, as route syntax).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c)
}

pub(crate) fn build(raw: RawArgs, diag: &mut Diagnostics) -> Model {
    let prefix = match raw.prefix {
        Some((prefix, span)) => {
            check_path("prefix", &prefix, span, true, diag);
            prefix
        }
        None => String::new(),
    };
    let mut endpoints: Vec<(&'static str, Option<String>)> = ENDPOINTS
        .iter()
        .map(|(_, variant, default)| (*variant, Some((*default).to_owned())))
        .collect();
    let mut spans = vec![None; ENDPOINTS.len()];
    for (key, setting, key_span) in raw.endpoints {
        let Some(index) = ENDPOINTS.iter().position(|(k, _, _)| *k == key) else {
            continue;
        };
        match setting {
            Setting::Disabled => endpoints[index].1 = None,
            Setting::Path(path, span) => {
                check_path(&format!("path of `{key}`"), &path, span, false, diag);
                endpoints[index].1 = Some(path);
                spans[index] = Some(span);
            }
        }
        spans[index] = spans[index].or(Some(key_span));
    }
    // Two endpoints may share a path when they answer different methods, as `AuthRoutes::path`
    // allows; the same method twice on one path is refused.
    for i in 0..endpoints.len() {
        for j in 0..i {
            if let (Some(a), Some(b)) = (&endpoints[i].1, &endpoints[j].1)
                && a == b
                && method(ENDPOINTS[i].0) == method(ENDPOINTS[j].0)
            {
                let span = spans[i]
                    .or(spans[j])
                    .unwrap_or_else(proc_macro2::Span::call_site);
                diag.error(
                    span,
                    format!(
                        "`#[oidc::auth_router]`: `{}` and `{}` both answer {} `{prefix}{a}`; give one of them another path",
                        ENDPOINTS[j].0,
                        ENDPOINTS[i].0,
                        method(ENDPOINTS[i].0)
                    ),
                );
            }
        }
    }
    let crate_path = match raw.crate_path {
        Some(path) => Some(path),
        None if raw.crate_unread => None,
        None => Some(syn::parse_quote!(::oidc_auth)),
    };
    Model {
        crate_path,
        prefix,
        prefix_unread: raw.prefix_unread,
        endpoints,
    }
}
