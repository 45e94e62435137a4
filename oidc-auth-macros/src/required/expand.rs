//! Code generation: a hidden policy type and the guard, always extracted first. The body and
//! the return type are never touched.

use proc_macro2::TokenStream;
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, parse_quote};

use super::model::{Mode, Model, TokenParam};
use crate::args::{ClaimLit, ScopeSpec};

pub(crate) fn expand(model: &Model, mut item: ItemFn) -> TokenStream {
    let krate = &model.crate_path;
    let fn_name = item.sig.ident.to_string();
    let policy = format_ident!("__oidc_auth_policy_{}", fn_name.trim_start_matches("r#"));
    let vis = &item.vis;

    let scopes = model.scopes.iter().map(|scope| match scope {
        ScopeSpec::Lit { value, span } => quote_spanned!(*span=> #value),
        ScopeSpec::Path(path) => {
            // `Enum::Variant` -> `<Enum as DerivedScopes>::ALL[Enum::Variant as usize]`: a
            // const expression, and a clear error when `Enum` does not derive `Scopes` (a
            // hand-written `Scopes` need not list its scopes in the order of the variants).
            let mut enum_path = path.clone();
            enum_path.segments.pop();
            let enum_path = enum_path
                .segments
                .pairs()
                .map(|p| p.into_value())
                .collect::<Vec<_>>();
            let leading = path.leading_colon;
            quote_spanned!(path.span()=>
                <#leading #(#enum_path)::* as #krate::__private::DerivedScopes>::ALL[#path as ::core::primitive::usize]
            )
        }
    });
    let claims = model.claims.iter().map(|claim| {
        let key = &claim.key;
        let values = claim.values.iter().map(|v| match v {
            ClaimLit::Str(s) => quote!(#krate::__private::ClaimValue::Str(#s)),
            ClaimLit::Bool(b) => quote!(#krate::__private::ClaimValue::Bool(#b)),
            ClaimLit::Int(i) => quote!(#krate::__private::ClaimValue::Int(#i)),
        });
        quote!(#krate::__private::ClaimRule::new(#key, &[#(#values),*]))
    });

    let guard = match model.mode {
        Mode::Required => quote!(#krate::__private::Authorized),
        Mode::Optional => quote!(#krate::__private::MaybeAuthorized),
    };
    // The user's own spelling of the token type is kept in a checked conversion, so that it
    // resolves to the real `IdToken` and its import stays used.
    let mut token_type_check = TokenStream::new();
    // The guard comes first, and the handler's other parameters are extracted only after it has
    // accepted the request. On actix-web that takes gathering them into one `Guarded`
    // parameter, `Guarded(guard, (a, b, ..))`: actix-web creates a handler's extractors together
    // and polls them side by side, so a body extractor next to the guard could answer (413, or
    // a content-type or deserialize error describing the expected body) while the guard still
    // waited on the provider. axum runs every `FromRequestParts` extractor, the guard among
    // them, before the body one anyway, so with axum alone the guard is simply the first
    // parameter, and the signature stays one that other attributes (`#[debug_handler]`) and
    // `middleware::from_fn` understand. Which of the two applies depends on the features of
    // `oidc-auth`, which only a `macro_rules!` macro of that crate can see.
    let mut others = Vec::new();
    let mut token_param = None;
    for (i, input) in std::mem::take(&mut item.sig.inputs).into_iter().enumerate() {
        match input {
            FnArg::Typed(pat_type) if matches!(model.token, TokenParam::At(at) if at == i) => {
                token_param = Some(pat_type);
            }
            FnArg::Typed(pat_type) => others.push(pat_type),
            // Refused by the model.
            FnArg::Receiver(_) => {}
        }
    }
    let (guard_pat, guard_ty): (syn::Pat, syn::Type) = match token_param {
        Some(pat_type) => {
            let user_ty = &pat_type.ty;
            let check = match model.mode {
                Mode::Required => quote!(#krate::__private::RequiredToken),
                Mode::Optional => quote!(#krate::__private::OptionalToken),
            };
            token_type_check = quote_spanned! {user_ty.span()=>
                fn __oidc_auth_token_type<T: #check>() {}
                fn __oidc_auth_token_type_check() { __oidc_auth_token_type::<#user_ty>() }
            };
            let pat = &pat_type.pat;
            (parse_quote!(#guard(#pat, _)), parse_quote!(#guard<#policy>))
        }
        None => (parse_quote!(_), parse_quote!(#guard<#policy>)),
    };
    let other_params_check = other_params_check(krate, &item, &others);
    let plain_guard: FnArg = parse_quote!(#guard_pat: #guard_ty);
    let handler = if others.is_empty() {
        item.sig.inputs.push(plain_guard);
        quote!(#item)
    } else {
        let mut plain = item.clone();
        plain.sig.inputs.push(plain_guard);
        plain
            .sig
            .inputs
            .extend(others.iter().cloned().map(FnArg::Typed));
        let (rest_pat, rest_ty) = rest_tuple(&others);
        item.sig.inputs.push(parse_quote!(
            #krate::__private::Guarded(#guard_pat, #rest_pat): #krate::__private::Guarded<#guard_ty, #rest_ty>
        ));
        quote! {
            #krate::__private::handler_shape! {
                { #plain }
                { #item }
            }
        }
    };

    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #policy;

        const _: () = {
            impl #krate::__private::Policy for #policy {
                const SCOPES: &'static [&'static ::core::primitive::str] = &[#(#scopes),*];
                const CLAIMS: &'static [#krate::__private::ClaimRule] = &[#(#claims),*];
            }
            #token_type_check
            #other_params_check
        };

        #handler
    }
}

/// A function that compiles only if none of the handler's other parameters is the token under
/// another name (see `oidc_auth::__private::TokenKind`), generic over the handler's own
/// generics so that parameter types naming them resolve. A type with `impl Trait` in it cannot
/// be named there; it is left out.
fn other_params_check(krate: &syn::Path, item: &ItemFn, others: &[syn::PatType]) -> TokenStream {
    let checks: Vec<TokenStream> = others
        .iter()
        .filter(|param| !mentions_impl_trait(&param.ty))
        .map(|param| {
            let ty = &param.ty;
            quote_spanned! {ty.span()=>
                #krate::__private::other_parameter(
                    (&&::core::marker::PhantomData::<#ty>).__oidc_auth_kind(),
                );
            }
        })
        .collect();
    if checks.is_empty() {
        return TokenStream::new();
    }
    let (impl_generics, _, where_clause) = item.sig.generics.split_for_impl();
    quote! {
        #[allow(dead_code, clippy::extra_unused_type_parameters)]
        fn __oidc_auth_other_parameters #impl_generics () #where_clause {
            #[allow(unused_imports)]
            use #krate::__private::{OtherKind as _, TokenKind as _};
            #(#checks)*
        }
    }
}

fn mentions_impl_trait(ty: &syn::Type) -> bool {
    fn any_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => any_impl(group.stream()),
            _ => false,
        })
    }
    any_impl(ty.to_token_stream())
}

/// The handler's other parameters as one tuple pattern and its type, in their order. Both
/// frameworks take tuples of up to 16 extractors, as many parameters as their handlers take.
fn rest_tuple(params: &[syn::PatType]) -> (TokenStream, TokenStream) {
    let pats = params.iter().map(|p| &p.pat);
    let tys = params.iter().map(|p| &p.ty);
    (quote!((#(#pats,)*)), quote!((#(#tys,)*)))
}
