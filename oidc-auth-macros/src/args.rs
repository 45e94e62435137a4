//! The argument grammar shared by `#[required]` and `#[optional]`:
//!
//! ```text
//! args   := (arg ("," arg)*)? ","?
//! arg    := "scopes" "=" (string | "[" (string | path),* "]" | path)
//!         | "claims" "(" (key "=" value),* ")"
//!         | "crate" "=" string
//! key    := ident | string            (a claim name; a dotted path or a name with `-` as a string)
//! value  := literal | "[" literal,* "]"   (string, bool or integer)
//! ```
//!
//! Parsing collects every problem in [`Diagnostics`] and keeps going where it can.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Ident, Lit, LitStr, Token, bracketed, parenthesized};

use crate::diag::{Diagnostics, did_you_mean};
use crate::scope_token;

const KEYS: &[&str] = &["scopes", "claims", "crate"];

/// One required scope as written.
pub(crate) enum ScopeSpec {
    /// A scope token from a string literal.
    Lit { value: String, span: Span },
    /// A variant of an enum deriving `Scopes`.
    Path(syn::Path),
}

/// A literal value a claim is compared with.
pub(crate) enum ClaimLit {
    Str(String),
    Bool(bool),
    Int(i64),
}

/// One claim constraint as written.
pub(crate) struct ClaimSpec {
    pub(crate) key: String,
    pub(crate) values: Vec<ClaimLit>,
}

/// The parsed arguments.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) crate_path: Option<syn::Path>,
    pub(crate) scopes: Vec<ScopeSpec>,
    pub(crate) claims: Vec<ClaimSpec>,
}

/// Parses `tokens`, the attribute's arguments, for the macro `name` (`required`/`optional`).
pub(crate) fn parse(tokens: TokenStream, name: &str, diag: &mut Diagnostics) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream<'_>| parse_all(input, name, &mut args, diag);
    if let Err(e) = parser.parse2(tokens) {
        // syn's own messages ("expected `=`") do not say which macro is speaking.
        let hint = if e.to_string().contains("expected `,`") {
            "; separate arguments and list elements with commas"
        } else {
            "; arguments are `scopes = ...`, `claims(key = value, ...)` and `crate = \"...\"`"
        };
        diag.error(e.span(), format!("`#[oidc::{name}]`: {e}{hint}"));
    }
    args
}

fn parse_all(
    input: ParseStream<'_>,
    name: &str,
    args: &mut Args,
    diag: &mut Diagnostics,
) -> syn::Result<()> {
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        let key = input.call(Ident::parse_any)?;
        let key_str = key.to_string();
        if KEYS.contains(&key_str.as_str()) && seen.contains(&key_str) {
            diag.error(
                key.span(),
                format!(
                    "`#[oidc::{name}]`: `{key_str}` is given twice; merge them into one `{key_str}`"
                ),
            );
        }
        seen.push(key_str.clone());
        match key_str.as_str() {
            "scopes" => {
                input.parse::<Token![=]>()?;
                parse_scopes(input, name, args, diag)?;
            }
            "claims" => {
                if input.peek(Token![=]) {
                    diag.error(
                        key.span(),
                        format!("`#[oidc::{name}]`: `claims` takes a list in parentheses: write `claims(groups = \"admins\")`"),
                    );
                    skip_value(input)?;
                } else {
                    let content;
                    let parens = parenthesized!(content in input);
                    parse_claims(&content, parens.span.join(), name, args, diag)?;
                }
            }
            "crate" => {
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                match lit.parse::<syn::Path>() {
                    Ok(path) => args.crate_path = Some(path),
                    Err(_) => diag.error(
                        lit.span(),
                        format!(
                            "`#[oidc::{name}]`: `crate` must be a path such as `\"::oidc_auth\"`"
                        ),
                    ),
                }
            }
            other => {
                let hint = match did_you_mean(other, KEYS) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => "; expected `scopes`, `claims` or `crate`".to_owned(),
                };
                diag.error(
                    key.span(),
                    format!("`#[oidc::{name}]`: unknown argument `{other}`{hint}"),
                );
                skip_value(input)?;
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// Skips an unknown argument's value, up to the next top-level comma.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn check_scope_token(
    value: &str,
    span: Span,
    in_list: bool,
    name: &str,
    diag: &mut Diagnostics,
) -> bool {
    if value.is_empty() {
        diag.error(
            span,
            format!("`#[oidc::{name}]`: empty scope; remove it or name the scope"),
        );
        return false;
    }
    if value.trim().is_empty() {
        diag.error(
            span,
            format!("`#[oidc::{name}]`: scope `{value:?}` is blank; remove it or name the scope"),
        );
        return false;
    }
    if in_list && value.contains(',') {
        let words = scope_token::split_at_commas(value);
        let message = if words.is_empty() {
            format!(
                "`#[oidc::{name}]`: scope `{}` is only a comma; remove it or name the scope",
                value.trim()
            )
        } else {
            format!(
                "`#[oidc::{name}]`: scope `{value}` contains a comma; scopes are separated by spaces in a string and are separate elements in a list: write `[{}]`",
                quoted(&words)
            )
        };
        diag.error(span, message);
        return false;
    }
    if in_list && value.contains(' ') {
        let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
        diag.error(
            span,
            format!(
                "`#[oidc::{name}]`: scope `{value}` contains a space; write each scope as its own element: [{}]",
                quoted(&words)
            ),
        );
        return false;
    }
    if let Some(problem) = scope_token::bad_character(value) {
        diag.error(span, format!("`#[oidc::{name}]`: {problem}"));
        return false;
    }
    true
}

/// `["a", "b"]` -> `"a", "b"`.
fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reports a string of scopes written with commas (`scopes = "admin, read"`), with the string
/// the user meant.
fn comma_in_string(value: &str, span: Span, name: &str, diag: &mut Diagnostics) {
    let words = scope_token::split_at_commas(value);
    let message = if words.is_empty() {
        format!(
            "`#[oidc::{name}]`: scope `{}` is only a comma; remove `scopes` or name a scope",
            value.trim()
        )
    } else {
        format!(
            "`#[oidc::{name}]`: `{value}` contains a comma; scopes are separated by spaces: write `scopes = \"{}\"`",
            words.join(" ")
        )
    };
    diag.error(span, message);
}

fn parse_scopes(
    input: ParseStream<'_>,
    name: &str,
    args: &mut Args,
    diag: &mut Diagnostics,
) -> syn::Result<()> {
    let mut found = Vec::new();
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let value = lit.value();
        if value.trim().is_empty() {
            diag.error(
                lit.span(),
                format!("`#[oidc::{name}]`: empty scope; remove `scopes` or name a scope"),
            );
        } else if value.contains(',') {
            comma_in_string(&value, lit.span(), name, diag);
        }
        // A word with a comma has been reported above, with the whole string.
        for word in value
            .split(' ')
            .filter(|w| !w.is_empty() && !w.contains(','))
        {
            if check_scope_token(word, lit.span(), false, name, diag) {
                found.push(ScopeSpec::Lit {
                    value: word.to_owned(),
                    span: lit.span(),
                });
            }
        }
    } else if input.peek(syn::token::Bracket) {
        let content;
        let brackets = bracketed!(content in input);
        let items = content.parse_terminated(ScopeItem::parse, Token![,])?;
        if items.is_empty() {
            diag.error(
                brackets.span.join(),
                format!("`#[oidc::{name}]`: empty scope list; remove `scopes` or name at least one scope"),
            );
        }
        for item in items {
            match item {
                ScopeItem::Lit(lit) => {
                    let value = lit.value();
                    if check_scope_token(&value, lit.span(), true, name, diag) {
                        found.push(ScopeSpec::Lit {
                            value,
                            span: lit.span(),
                        });
                    }
                }
                ScopeItem::Path(path) => found.push(ScopeSpec::Path(path)),
            }
        }
    } else if input.peek(Ident::peek_any) || input.peek(Token![::]) {
        found.push(ScopeSpec::Path(input.parse()?));
    } else {
        let token: TokenTree = input.parse()?;
        diag.error(
            token.span(),
            format!("`#[oidc::{name}]`: `scopes` takes a string (\"admin read\"), a list ([\"admin\", \"read\"]) or declared scopes ([AppScope::Admin])"),
        );
        return Ok(());
    }
    for (i, scope) in found.iter().enumerate() {
        let key = scope_key(scope);
        if found[..i].iter().any(|earlier| scope_key(earlier) == key) {
            let message = format!("`#[oidc::{name}]`: scope `{key}` is listed twice; remove one");
            match scope {
                ScopeSpec::Lit { span, .. } => diag.error(*span, message),
                ScopeSpec::Path(p) => diag.error_spanned(p, message),
            }
        }
        if let ScopeSpec::Path(p) = scope
            && p.segments.len() < 2
        {
            diag.error_spanned(
                p,
                format!("`#[oidc::{name}]`: `{key}` is not a scope; write a string (\"{key}\") or a declared scope as `Enum::Variant`"),
            );
        }
    }
    args.scopes.extend(found);
    Ok(())
}

fn scope_key(scope: &ScopeSpec) -> String {
    match scope {
        ScopeSpec::Lit { value, .. } => value.clone(),
        ScopeSpec::Path(path) => quote::quote!(#path).to_string().replace(' ', ""),
    }
}

enum ScopeItem {
    Lit(LitStr),
    Path(syn::Path),
}

impl ScopeItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            input.parse().map(ScopeItem::Lit)
        } else {
            input.parse().map(ScopeItem::Path)
        }
    }
}

fn parse_claims(
    input: ParseStream<'_>,
    span: Span,
    name: &str,
    args: &mut Args,
    diag: &mut Diagnostics,
) -> syn::Result<()> {
    if input.is_empty() {
        diag.error(
            span,
            format!("`#[oidc::{name}]`: empty `claims()`; remove it or add `key = value`"),
        );
    }
    while !input.is_empty() {
        let (key, key_span, unquoted) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span(), false)
        } else {
            let ident = input.call(Ident::parse_any)?;
            let span = ident.span();
            if continues_key(input) {
                (unquoted_key(ident, input, name, diag)?, span, true)
            } else {
                (ident.unraw().to_string(), span, false)
            }
        };
        // An unquoted dotted name has been reported by `unquoted_key`.
        let key_ok = !unquoted && check_claim_key(&key, key_span, name, args, diag);
        input.parse::<Token![=]>()?;
        let values = parse_claim_values(input, &key, name, diag)?;
        if key_ok && !is_scope_claim(&key, &values, key_span, name, diag) {
            args.claims.push(ClaimSpec { key, values });
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

fn check_claim_key(key: &str, span: Span, name: &str, args: &Args, diag: &mut Diagnostics) -> bool {
    let message = if key.is_empty() {
        format!("`#[oidc::{name}]`: empty claim name; name the claim, e.g. `groups`")
    } else if key.split('.').any(str::is_empty) {
        format!(
            "`#[oidc::{name}]`: claim path `{key}` has an empty segment; separate names with single dots, e.g. `realm_access.roles`"
        )
    } else if key.split('.').any(|segment| segment.trim() != segment) {
        // Provider-issued claim names carry no such whitespace, so the rule could never hold.
        let trimmed: Vec<&str> = key.split('.').map(str::trim).collect();
        let fix = if trimmed.iter().any(|segment| segment.is_empty()) {
            "remove the whitespace and name the claim".to_owned()
        } else {
            format!("write `{:?}`", trimmed.join("."))
        };
        format!(
            "`#[oidc::{name}]`: claim name `{key:?}` has whitespace at the start or end of a name, so it would never match a claim; {fix}"
        )
    } else if args.claims.iter().any(|c| c.key == key) {
        format!(
            "`#[oidc::{name}]`: claim `{key}` is constrained twice; list all accepted values once: `{key} = [\"a\", \"b\"]`"
        )
    } else {
        return true;
    };
    diag.error(span, message);
    false
}

/// Reports a constraint on `scope` or `scp`, the claims that hold the granted scopes, and
/// returns whether it was one. A claim constraint compares the claim's value whole, so
/// `claims(scope = "admin")` would refuse a token granted `"openid admin"`: `scopes = ...` was
/// meant, which reads both claims and checks each scope.
fn is_scope_claim(
    key: &str,
    values: &[ClaimLit],
    span: Span,
    name: &str,
    diag: &mut Diagnostics,
) -> bool {
    let holds = match key {
        "scope" => {
            "as one space-separated string, which a claim constraint compares whole (`\"openid admin\"` is not `\"admin\"`)"
        }
        "scp" => {
            "as a list or as a space-separated string, which a claim constraint does not split, and a constraint on it ignores `scope`"
        }
        _ => return false,
    };
    let scopes = match values {
        [ClaimLit::Str(value)] => format!("scopes = \"{value}\""),
        _ => "scopes = \"...\"".to_owned(),
    };
    diag.error(
        span,
        format!(
            "`#[oidc::{name}]`: claim `{key}` holds the token's scopes, {holds}; require scopes with `{scopes}`, which reads both `scope` and `scp` and checks each scope"
        ),
    );
    true
}

/// Whether the claim name just read goes on: `realm_access.roles`, `x-hasura-role` or
/// `https://...` written without quotes.
fn continues_key(input: ParseStream<'_>) -> bool {
    input.peek(Token![.]) || input.peek(Token![-]) || input.peek(Token![:]) || input.peek(Token![/])
}

/// Reports a claim name that Rust does not read as one token (`realm_access.roles`,
/// `x-hasura-role`), with the same constraint written with the name as a string. Consumes the
/// name, up to its `=`, and returns it as written.
fn unquoted_key(
    first: Ident,
    input: ParseStream<'_>,
    name: &str,
    diag: &mut Diagnostics,
) -> syn::Result<String> {
    let mut tokens = vec![TokenTree::Ident(first)];
    while !input.is_empty() && !input.peek(Token![=]) && !input.peek(Token![,]) {
        tokens.push(input.parse()?);
    }
    let key: String = tokens.iter().map(ToString::to_string).collect();
    let value = if input.peek(Token![=]) {
        let fork = input.fork();
        fork.parse::<Token![=]>()?;
        let mut value = TokenStream::new();
        while !fork.is_empty() && !fork.peek(Token![,]) {
            value.extend([fork.parse::<TokenTree>()?]);
        }
        written(value)
    } else {
        "...".to_owned()
    };
    diag.error_spanned(
        tokens.into_iter().collect::<TokenStream>(),
        format!(
            "`#[oidc::{name}]`: claim name `{key}` is not an identifier; write the name as a string: `claims({key:?} = {value})`"
        ),
    );
    Ok(key)
}

/// Tokens as the user wrote them, near enough for a suggestion: `["a", "b"]`, `-1`.
fn written(tokens: TokenStream) -> String {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) if group.delimiter() == proc_macro2::Delimiter::Bracket => {
                format!("[{}]", written(group.stream()))
            }
            TokenTree::Punct(punct) if punct.as_char() == ',' => ", ".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn parse_claim_values(
    input: ParseStream<'_>,
    key: &str,
    name: &str,
    diag: &mut Diagnostics,
) -> syn::Result<Vec<ClaimLit>> {
    let exprs: Vec<syn::Expr> = if input.peek(syn::token::Bracket) {
        let content;
        let brackets = bracketed!(content in input);
        let items: Vec<syn::Expr> = content
            .parse_terminated(syn::Expr::parse, Token![,])?
            .into_iter()
            .collect();
        if items.is_empty() {
            diag.error(
                brackets.span.join(),
                format!("`#[oidc::{name}]`: claim `{key}` has an empty list of values; give at least one accepted value"),
            );
        }
        items
    } else {
        vec![input.parse()?]
    };
    let mut values = Vec::new();
    for expr in exprs {
        match claim_value(&expr) {
            Some(Ok(value)) => values.push(value),
            Some(Err(())) => diag.error_spanned(
                &expr,
                format!("`#[oidc::{name}]`: integer value of claim `{key}` does not fit in an i64"),
            ),
            None => {
                let written = quote::quote!(#expr).to_string().replace(' ', "");
                diag.error_spanned(
                    &expr,
                    format!("`#[oidc::{name}]`: the values of claim `{key}` must be strings, booleans or integers; write \"{written}\""),
                );
            }
        }
    }
    Ok(values)
}

/// A literal claim value: a string, a boolean, or an integer (possibly negative). `None` for
/// anything else, `Some(Err)` for an integer out of range.
fn claim_value(expr: &syn::Expr) -> Option<Result<ClaimLit, ()>> {
    match expr {
        syn::Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(Ok(ClaimLit::Str(s.value()))),
            Lit::Bool(b) => Some(Ok(ClaimLit::Bool(b.value))),
            Lit::Int(i) => Some(i.base10_parse::<i64>().map(ClaimLit::Int).map_err(|_| ())),
            _ => None,
        },
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: Lit::Int(i), ..
            }) => Some(
                format!("-{}", i.base10_digits())
                    .parse::<i64>()
                    .map(ClaimLit::Int)
                    .map_err(|_| ()),
            ),
            _ => None,
        },
        syn::Expr::Group(group) => claim_value(&group.expr),
        _ => None,
    }
}
