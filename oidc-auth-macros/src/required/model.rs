//! The validated model of a protected handler: its policy and the parameter that carries the
//! token.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, Type};

use crate::args::{Args, ClaimSpec, ScopeSpec};
use crate::diag::Diagnostics;

/// `#[required]` or `#[optional]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Required,
    Optional,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Required => "required",
            Mode::Optional => "optional",
        }
    }
}

/// Where the token goes.
pub(crate) enum TokenParam {
    /// The parameter at this index has type `IdToken` (required) or `Option<IdToken>` (optional);
    /// it becomes the guard, moved to the front.
    At(usize),
    /// The handler takes no token (`required` only); a guard parameter is added in front.
    Absent,
}

/// Everything the expansion needs, checked.
pub(crate) struct Model {
    pub(crate) mode: Mode,
    pub(crate) crate_path: syn::Path,
    pub(crate) scopes: Vec<ScopeSpec>,
    pub(crate) claims: Vec<ClaimSpec>,
    pub(crate) token: TokenParam,
}

/// What a parameter type is, as far as the macros care.
enum Kind {
    Token,
    OptionToken,
    Other,
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Paren(p) => last_segment(&p.elem),
        Type::Group(g) => last_segment(&g.elem),
        _ => None,
    }
}

fn kind(ty: &Type) -> Kind {
    let Some(segment) = last_segment(ty) else {
        return Kind::Other;
    };
    if segment.ident == "IdToken" && segment.arguments.is_none() {
        return Kind::Token;
    }
    if segment.ident == "Option"
        && let PathArguments::AngleBracketed(args) = &segment.arguments
        && let [GenericArgument::Type(inner)] = args.args.iter().collect::<Vec<_>>().as_slice()
        && matches!(kind(inner), Kind::Token)
    {
        return Kind::OptionToken;
    }
    Kind::Other
}

/// The token's type and the guards that carry it: a parameter naming one of them, other than
/// the token parameter, takes the token apart from the check of `#[oidc::optional]`.
const TOKEN_CARRIERS: &[&str] = &["IdToken", "Authorized", "MaybeAuthorized"];

/// The first of [`TOKEN_CARRIERS`] that `ty` names, at any depth and in any path form
/// (`oidc_auth::IdToken`, `Option<Authorized<P>>`, `Result<Option<IdToken>, E>`).
fn token_carrier(ty: &Type) -> Option<&'static str> {
    fn find(tokens: TokenStream) -> Option<&'static str> {
        let mut after_quote = false;
        for tree in tokens {
            // `'IdToken` is a lifetime, not a type.
            let is_quote = matches!(&tree, TokenTree::Punct(p) if p.as_char() == '\'');
            match tree {
                TokenTree::Ident(ident) if !after_quote => {
                    let name = ident.unraw().to_string();
                    if let Some(found) = TOKEN_CARRIERS.iter().find(|c| **c == name) {
                        return Some(found);
                    }
                }
                TokenTree::Group(group) => {
                    if let Some(found) = find(group.stream()) {
                        return Some(found);
                    }
                }
                _ => {}
            }
            after_quote = is_quote;
        }
        None
    }
    find(ty.to_token_stream())
}

/// `required` or `optional` when `attr` is one of these macros (`#[oidc::required]`,
/// `#[oidc_auth::optional]`, or imported by name), else `None`.
pub(crate) fn guard_attribute(attr: &syn::Attribute) -> Option<&'static str> {
    let last = attr.path().segments.last()?;
    ["required", "optional"]
        .into_iter()
        .find(|name| last.ident == name)
}

/// Checks the function and combines it with the parsed arguments.
pub(crate) fn build(mode: Mode, args: Args, item: &ItemFn, diag: &mut Diagnostics) -> Model {
    let name = mode.name();
    if item.sig.asyncness.is_none() {
        diag.error(
            item.sig.fn_token.span,
            format!(
                "`#[oidc::{name}]`: `{}` is not async; handlers must be `async fn`",
                item.sig.ident
            ),
        );
    }
    // The frameworks call a handler as a safe Rust function, so either would fail later with an
    // error about a trait bound on the handler that does not say why.
    if let Some(unsafety) = &item.sig.unsafety {
        diag.error(
            unsafety.span,
            format!(
                "`#[oidc::{name}]`: `{}` is an `unsafe fn`, which the frameworks cannot call as a handler; remove `unsafe` and put an `unsafe` block in the body",
                item.sig.ident
            ),
        );
    }
    if let Some(abi) = &item.sig.abi {
        let written = match &abi.name {
            Some(lit) => format!("extern {}", lit.token()),
            None => "extern".to_owned(),
        };
        diag.error_spanned(
            abi,
            format!(
                "`#[oidc::{name}]`: `{}` is declared `{written}`, but a handler is a Rust function; remove `{written}`",
                item.sig.ident
            ),
        );
    }
    // Only the outermost attribute sees the others: each would add its own guard and hidden
    // policy type, and the second policy type is a confusing "defined multiple times" error.
    for attr in &item.attrs {
        let Some(other) = guard_attribute(attr) else {
            continue;
        };
        if other == name {
            diag.error_spanned(
                attr,
                format!(
                    "`#[oidc::{name}]` is given twice on `{}`; keep one",
                    item.sig.ident
                ),
            );
        } else {
            diag.error_spanned(
                attr,
                format!(
                    "`#[oidc::{name}]` and `#[oidc::{other}]` on the same handler `{}`; a token is either required or optional: keep one",
                    item.sig.ident
                ),
            );
        }
    }
    let mut token = TokenParam::Absent;
    let mut token_span: Option<Span> = None;
    // A parameter refused as a form of the token: the handler meant to take one.
    let mut token_refused = false;
    for (index, input) in item.sig.inputs.iter().enumerate() {
        let pat_type = match input {
            FnArg::Receiver(receiver) => {
                diag.error_spanned(
                    receiver,
                    format!("`#[oidc::{name}]`: handlers cannot take `self`, nor be declared inside an `impl` block (the macro adds a policy type next to the handler, which an `impl` block cannot hold); make it a free function"),
                );
                continue;
            }
            FnArg::Typed(pat_type) => pat_type,
        };
        // The parameters are gathered into one tuple behind the guard, where an attribute has
        // no place to go.
        for attr in &pat_type.attrs {
            diag.error_spanned(
                attr,
                format!("`#[oidc::{name}]`: attributes on a handler's parameters are not supported; the parameters are extracted together after the token check"),
            );
        }
        let found = kind(&pat_type.ty);
        let is_token = match (mode, found) {
            (Mode::Optional, Kind::Other) => {
                // The guard of `optional` never rejects, so any other parameter carrying the
                // token would hand the handler one that need not meet the route's
                // requirements. Under `required` the guard has already accepted the token,
                // and a guard of the handler's own (`Authorized<P>`) only adds requirements.
                if let Some(carrier) = token_carrier(&pat_type.ty) {
                    token_refused = true;
                    diag.error_spanned(
                        &pat_type.ty,
                        format!("`#[oidc::optional]`: this parameter's type names `{carrier}`, but the macro takes the token only as `Option<IdToken>`: in any other form it would be extracted apart from the route's check and reach the handler without meeting the route's requirements; take the token once, as `token: Option<IdToken>`, or use `#[oidc::required]`"),
                    );
                }
                false
            }
            (Mode::Required, Kind::Other) => false,
            (Mode::Required, Kind::Token) | (Mode::Optional, Kind::OptionToken) => true,
            (Mode::Required, Kind::OptionToken) => {
                diag.error_spanned(
                    &pat_type.ty,
                    "`#[oidc::required]`: the token parameter is an `Option`, but a required token is always present; take `IdToken`, or use `#[oidc::optional]`",
                );
                true
            }
            (Mode::Optional, Kind::Token) => {
                diag.error_spanned(
                    &pat_type.ty,
                    "`#[oidc::optional]`: the token may be absent, so its parameter must be `Option<IdToken>`; or use `#[oidc::required]`",
                );
                true
            }
        };
        if is_token {
            if let Some(first) = token_span {
                let _ = first;
                diag.error_spanned(
                    &pat_type.ty,
                    format!("`#[oidc::{name}]`: a second token parameter; take the token once"),
                );
            } else {
                token_span = Some(pat_type.ty.span());
                token = TokenParam::At(index);
            }
        }
    }
    // `required` without a token still refuses requests; `optional` without one would check the
    // token and throw the answer away, leaving a public route that looks protected.
    if mode == Mode::Optional && matches!(token, TokenParam::Absent) && !token_refused {
        diag.error(
            item.sig.paren_token.span.join(),
            format!(
                "`#[oidc::optional]` on `{}`, which takes no token, has no effect: the route stays public and the result of the check goes nowhere; take the token as `token: Option<IdToken>` (`oidc_auth::IdToken` under that name, not renamed or aliased), or use `#[oidc::required]`",
                item.sig.ident
            ),
        );
    }
    Model {
        mode,
        crate_path: args
            .crate_path
            .unwrap_or_else(|| syn::parse_quote!(::oidc_auth)),
        scopes: args.scopes,
        claims: args.claims,
        token,
    }
}

#[cfg(test)]
mod tests {
    use super::token_carrier;

    fn carrier(ty: &str) -> Option<&'static str> {
        token_carrier(&syn::parse_str(ty).expect("a type"))
    }

    #[test]
    fn the_token_is_found_in_any_path_form_and_at_any_depth() {
        assert_eq!(carrier("oidc_auth::IdToken"), Some("IdToken"));
        assert_eq!(
            carrier("Result<Option<IdToken>, AuthRejection>"),
            Some("IdToken")
        );
        assert_eq!(carrier("Option<oidc::Authorized>"), Some("Authorized"));
        assert_eq!(carrier("MaybeAuthorized<P>"), Some("MaybeAuthorized"));
        assert_eq!(carrier("(u8, [r#IdToken; 1])"), Some("IdToken"));
        assert_eq!(
            carrier("Guarded<Authorized<P>, (Json<T>,)>"),
            Some("Authorized")
        );
    }

    #[test]
    fn other_types_and_lookalike_names_carry_no_token() {
        assert_eq!(carrier("Json<Value>"), None);
        assert_eq!(carrier("Option<IdTokens>"), None);
        assert_eq!(carrier("AuthRejection"), None);
        assert_eq!(carrier("&'IdToken str"), None);
    }
}
