//! Code generation: a hidden policy type and the guard parameter, always the first one. The
//! body and the return type are never touched.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
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
            // `Enum::Variant` -> `<Enum as ScopeEnum>::ALL[Enum::Variant as usize]`: a const
            // expression, and a clear error when `Enum` does not derive `Scopes`.
            let mut enum_path = path.clone();
            enum_path.segments.pop();
            let enum_path = enum_path
                .segments
                .pairs()
                .map(|p| p.into_value())
                .collect::<Vec<_>>();
            let leading = path.leading_colon;
            quote_spanned!(path.span()=>
                <#leading #(#enum_path)::* as #krate::__private::ScopeEnum>::ALL[#path as usize]
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
    // The guard always becomes the first parameter. actix-web creates and polls extractors in
    // parameter order, so a body extractor before the guard would answer first (413, or a
    // content-type or deserialize error describing the expected body) to a caller without a
    // token. axum runs every `FromRequestParts` extractor before the body one, whatever their
    // order.
    let mut others = syn::punctuated::Punctuated::new();
    let mut token_param = None;
    for (i, input) in std::mem::take(&mut item.sig.inputs).into_iter().enumerate() {
        match input {
            FnArg::Typed(pat_type) if matches!(model.token, TokenParam::At(at) if at == i) => {
                token_param = Some(pat_type);
            }
            other => others.push(other),
        }
    }
    item.sig.inputs = others;
    let guard_param: FnArg = match token_param {
        Some(mut pat_type) => {
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
            let new_pat: syn::Pat = parse_quote!(#guard(#pat, _));
            let new_ty: syn::Type = parse_quote!(#guard<#policy>);
            *pat_type.pat = new_pat;
            *pat_type.ty = new_ty;
            FnArg::Typed(pat_type)
        }
        None => parse_quote!(_: #guard<#policy>),
    };
    item.sig.inputs.insert(0, guard_param);

    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #policy;

        const _: () = {
            impl #krate::__private::Policy for #policy {
                const SCOPES: &'static [&'static str] = &[#(#scopes),*];
                const CLAIMS: &'static [#krate::__private::ClaimRule] = &[#(#claims),*];
            }
            #token_type_check
        };

        #item
    }
}
