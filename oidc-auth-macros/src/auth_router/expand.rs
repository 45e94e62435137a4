//! Code generation: the route spec as an implementation of `AuthRouterSpec`, and the methods
//! that build the framework objects (emitted by the runtime crate for the frameworks it has).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemStruct;

use super::model::Model;

pub(crate) fn expand(krate: &syn::Path, model: &Model, item: &ItemStruct) -> TokenStream {
    let prefix = &model.prefix;
    let settings = model.endpoints.iter().map(|(variant, path)| {
        let variant = format_ident!("{}", variant);
        let path = match path {
            Some(path) => quote!(::core::option::Option::Some(#path)),
            None => quote!(::core::option::Option::None),
        };
        quote!((#krate::__private::AuthEndpoint::#variant, #path))
    });
    let routes = quote!(#krate::__private::checked_routes(#prefix, &[#(#settings),*]));
    items(krate, prefix, routes, item)
}

/// What the user's other code expects of the struct after an error: the struct, its
/// `AuthRouterSpec` impl and its methods, so that `AuthApi::router(..)` and the like add no
/// errors of their own. The routes are never built, since the build fails on the error.
pub(crate) fn fallback(krate: &syn::Path, model: &Model, item: &ItemStruct) -> TokenStream {
    // Any prefix but "" gives the methods of a router with a prefix (`scope` returns a `Scope`),
    // which is what a user who wrote one expects.
    let prefix = if model.prefix_unread && model.prefix.is_empty() {
        "/"
    } else {
        &model.prefix
    };
    items(krate, prefix, quote!(::core::unreachable!()), item)
}

fn items(krate: &syn::Path, prefix: &str, routes: TokenStream, item: &ItemStruct) -> TokenStream {
    let ident = &item.ident;
    quote! {
        #item

        const _: () = {
            impl #krate::__private::AuthRouterSpec for #ident {
                fn routes() -> #krate::__private::AuthRoutes {
                    #routes
                }
            }
        };

        #krate::__private::auth_router_methods!(#ident, #prefix);
    }
}
