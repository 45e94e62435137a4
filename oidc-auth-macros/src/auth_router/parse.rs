//! Arguments of `#[auth_router]`: `key = "/path"` or `key = false` per endpoint, `prefix`, and
//! `crate`. Every problem is collected, spanned on its token.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Lit, Token};

use crate::diag::{Diagnostics, did_you_mean};

/// The endpoint keys, in the order of `oidc_auth::AuthEndpoint`.
pub(crate) const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("login", "Login", "/auth/v2/login"),
    ("callback", "Callback", "/auth/v2/callback"),
    ("token", "Token", "/auth/v2/token"),
    ("device", "Device", "/auth/v2/device"),
    ("logout", "Logout", "/auth/v2/logout"),
    ("userinfo", "Userinfo", "/auth/v2/userinfo"),
    ("jwks", "Jwks", "/auth/v2/.well-known/jwks.json"),
    ("revoke", "Revoke", "/auth/v2/revoke"),
];

const OTHER_KEYS: &[&str] = &["prefix", "crate"];

/// A value as written.
pub(crate) enum Setting {
    Path(String, Span),
    Disabled,
}

/// The parsed arguments.
#[derive(Default)]
pub(crate) struct RawArgs {
    pub(crate) prefix: Option<(String, Span)>,
    /// A `prefix` is written, but its value could not be read.
    pub(crate) prefix_unread: bool,
    pub(crate) crate_path: Option<syn::Path>,
    /// A `crate` is written, but its path could not be read.
    pub(crate) crate_unread: bool,
    pub(crate) endpoints: Vec<(String, Setting, Span)>,
}

pub(crate) fn parse(tokens: TokenStream, diag: &mut Diagnostics) -> RawArgs {
    let mut args = RawArgs::default();
    // Seen before parsing, which may stop at an earlier argument.
    let written = |key: &str| {
        tokens
            .clone()
            .into_iter()
            .any(|token| matches!(&token, TokenTree::Ident(ident) if ident == key))
    };
    let (prefix_written, crate_written) = (written("prefix"), written("crate"));
    let parser = |input: ParseStream<'_>| parse_all(input, &mut args, diag);
    if let Err(e) = parser.parse2(tokens) {
        // syn's own messages ("expected `=`") do not say which macro is speaking.
        let hint = if e.to_string().contains("expected `,`") {
            "separate arguments with commas"
        } else {
            "arguments are `endpoint = \"/path\"` or `endpoint = false` (login, callback, token, device, logout, userinfo, jwks, revoke), `prefix = \"/api\"` and `crate = \"::oidc_auth\"`"
        };
        diag.error(e.span(), format!("`#[oidc::auth_router]`: {e}; {hint}"));
    }
    args.prefix_unread = prefix_written && args.prefix.is_none();
    args.crate_unread = crate_written && args.crate_path.is_none();
    args
}

/// The literal value of an argument, or `None` once the value, something else (`prefix = API`),
/// has been skipped and reported with `expected`, the form the argument takes.
fn literal(
    input: ParseStream<'_>,
    expected: &str,
    diag: &mut Diagnostics,
) -> syn::Result<Option<Lit>> {
    if input.peek(Lit) {
        return input.parse().map(Some);
    }
    let mut value = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        value.extend([input.parse::<TokenTree>()?]);
    }
    if value.is_empty() {
        diag.error(input.span(), expected);
    } else {
        diag.error_spanned(value, expected);
    }
    Ok(None)
}

fn all_keys() -> Vec<&'static str> {
    ENDPOINTS
        .iter()
        .map(|(k, _, _)| *k)
        .chain(OTHER_KEYS.iter().copied())
        .collect()
}

fn parse_all(
    input: ParseStream<'_>,
    args: &mut RawArgs,
    diag: &mut Diagnostics,
) -> syn::Result<()> {
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        let key = input.call(Ident::parse_any)?;
        let name = key.to_string();
        input.parse::<Token![=]>()?;
        if seen.contains(&name) {
            diag.error(
                key.span(),
                format!("`#[oidc::auth_router]`: `{name}` is given twice; keep one"),
            );
        }
        seen.push(name.clone());
        match name.as_str() {
            "prefix" => {
                const EXPECTED: &str =
                    "`#[oidc::auth_router]`: `prefix` is a path string such as \"/api\"";
                match literal(input, EXPECTED, diag)? {
                    Some(Lit::Str(s)) => args.prefix = Some((s.value(), s.span())),
                    Some(other) => diag.error_spanned(other, EXPECTED),
                    None => {}
                }
            }
            "crate" => {
                const EXPECTED: &str = "`#[oidc::auth_router]`: `crate` is a path in a string, such as \"::oidc_auth\"";
                match literal(input, EXPECTED, diag)? {
                    Some(Lit::Str(s)) => match s.parse::<syn::Path>() {
                        Ok(path) => args.crate_path = Some(path),
                        Err(_) => diag.error(
                            s.span(),
                            "`#[oidc::auth_router]`: `crate` must be a path such as \"::oidc_auth\"",
                        ),
                    },
                    Some(other) => diag.error_spanned(other, EXPECTED),
                    None => {}
                }
            }
            endpoint if ENDPOINTS.iter().any(|(k, _, _)| *k == endpoint) => {
                let expected = format!(
                    "`#[oidc::auth_router]`: `{name}` takes a path string or `false` to disable it"
                );
                match literal(input, &expected, diag)? {
                    Some(Lit::Str(s)) => {
                        args.endpoints
                            .push((name, Setting::Path(s.value(), s.span()), key.span()));
                    }
                    Some(Lit::Bool(b)) if !b.value => {
                        args.endpoints.push((name, Setting::Disabled, key.span()));
                    }
                    Some(Lit::Bool(b)) => diag.error(
                        b.span,
                        format!("`#[oidc::auth_router]`: `{name} = true` is the default; remove it, or give a path"),
                    ),
                    Some(other) => diag.error_spanned(other, expected),
                    None => {}
                }
            }
            other => {
                let keys = all_keys();
                let hint = match did_you_mean(other, &keys) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "expected one of {}",
                        keys.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                diag.error(
                    key.span(),
                    format!("`#[oidc::auth_router]`: unknown argument `{other}`; {hint}"),
                );
                while !input.is_empty() && !input.peek(Token![,]) {
                    input.parse::<TokenTree>()?;
                }
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}
