//! Code generation: the route spec as an implementation of `AuthRouterSpec`, and the methods
//! that build the framework objects (emitted by the runtime crate for the frameworks it has).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemStruct;

use super::model::Model;

pub(crate) fn expand(model: &Model, item: &ItemStruct) -> TokenStream {
    let krate = &model.crate_path;
    let ident = &item.ident;
    let prefix = &model.prefix;
    let settings = model.endpoints.iter().map(|(variant, path)| {
        let variant = format_ident!("{}", variant);
        let path = match path {
            Some(path) => quote!(::core::option::Option::Some(#path)),
            None => quote!(::core::option::Option::None),
        };
        quote!((#krate::__private::AuthEndpoint::#variant, #path))
    });
    quote! {
        #item

        const _: () = {
            impl #krate::__private::AuthRouterSpec for #ident {
                fn routes() -> #krate::__private::AuthRoutes {
                    #krate::__private::checked_routes(#prefix, &[#(#settings),*])
                }
            }
        };

        #krate::__private::auth_router_methods!(#ident, #prefix);
    }
}
