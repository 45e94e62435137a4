//! `#[auth_router]`: parse the arguments, check the routes, expand into a route spec.

mod expand;
mod model;
mod parse;

use proc_macro2::TokenStream;
use syn::ItemStruct;

use crate::diag::Diagnostics;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diag = Diagnostics::default();
    let raw = parse::parse(attr, &mut diag);
    let Ok(strukt) = syn::parse2::<ItemStruct>(item.clone()) else {
        diag.error(
            proc_macro2::Span::call_site(),
            "`#[oidc::auth_router]` applies to a unit struct, such as `struct AuthApi;`",
        );
        let errors = diag.into_compile_errors();
        return quote::quote!(#item #errors);
    };
    if !strukt.generics.params.is_empty() {
        diag.error_spanned(
            &strukt.generics,
            "`#[oidc::auth_router]`: the struct cannot be generic",
        );
    }
    let model = model::build(raw, &mut diag);
    match model.crate_path.as_ref() {
        Some(krate) if !diag.has_errors() => expand::expand(krate, &model, &strukt),
        // The impls of a generic struct would need its generics, which the methods' macro does
        // not take; without the runtime crate's path they cannot be named at all.
        Some(krate) if strukt.generics.params.is_empty() => {
            let errors = diag.into_compile_errors();
            let items = expand::fallback(krate, &model, &strukt);
            quote::quote!(#items #errors)
        }
        _ => {
            let errors = diag.into_compile_errors();
            quote::quote!(#strukt #errors)
        }
    }
}
