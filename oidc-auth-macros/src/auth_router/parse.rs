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
    pub(crate) crate_path: Option<syn::Path>,
    pub(crate) endpoints: Vec<(String, Setting, Span)>,
}

pub(crate) fn parse(tokens: TokenStream, diag: &mut Diagnostics) -> RawArgs {
    let mut args = RawArgs::default();
    let parser = |input: ParseStream<'_>| parse_all(input, &mut args, diag);
    if let Err(e) = parser.parse2(tokens) {
        diag.push(e);
    }
    args
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
            "prefix" => match input.parse::<Lit>()? {
                Lit::Str(s) => args.prefix = Some((s.value(), s.span())),
                other => diag.error_spanned(
                    other,
                    "`#[oidc::auth_router]`: `prefix` is a path string such as \"/api\"",
                ),
            },
            "crate" => match input.parse::<Lit>()? {
                Lit::Str(s) => match s.parse::<syn::Path>() {
                    Ok(path) => args.crate_path = Some(path),
                    Err(_) => diag.error(
                        s.span(),
                        "`#[oidc::auth_router]`: `crate` must be a path such as \"::oidc_auth\"",
                    ),
                },
                other => diag.error_spanned(other, "`#[oidc::auth_router]`: `crate` is a string"),
            },
            endpoint if ENDPOINTS.iter().any(|(k, _, _)| *k == endpoint) => match input.parse::<Lit>()? {
                Lit::Str(s) => args.endpoints.push((name, Setting::Path(s.value(), s.span()), key.span())),
                Lit::Bool(b) if !b.value => args.endpoints.push((name, Setting::Disabled, key.span())),
                Lit::Bool(b) => diag.error(
                    b.span,
                    format!("`#[oidc::auth_router]`: `{name} = true` is the default; remove it, or give a path"),
                ),
                other => diag.error_spanned(
                    other,
                    format!("`#[oidc::auth_router]`: `{name}` takes a path string or `false` to disable it"),
                ),
            },
            other => {
                let keys = all_keys();
                let hint = match did_you_mean(other, &keys) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of {}", keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
                };
                diag.error(key.span(), format!("`#[oidc::auth_router]`: unknown argument `{other}`; {hint}"));
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
