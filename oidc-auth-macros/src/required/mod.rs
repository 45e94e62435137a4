//! `#[required]` and `#[optional]`: parse the arguments, build the checked model, expand.

mod expand;
mod model;
#[cfg(test)]
mod snapshots;

use proc_macro2::TokenStream;
use syn::ItemFn;

use crate::args;
use crate::diag::Diagnostics;
pub(crate) use model::Mode;

/// The whole macro. On any error the function is emitted unchanged (except for a stacked
/// `required`/`optional` attribute), followed by the errors, so the user sees only what is wrong
/// and their IDE keeps working.
pub(crate) fn expand(mode: Mode, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diag = Diagnostics::default();
    let args = args::parse(attr, mode.name(), &mut diag);
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let what = match syn::parse2::<syn::Item>(item.clone()) {
                Ok(syn::Item::Struct(_)) => ", not a struct",
                Ok(syn::Item::Enum(_)) => ", not an enum",
                Ok(syn::Item::Impl(_)) => ", not an impl block",
                _ => "",
            };
            diag.error_spanned(
                &item,
                format!(
                    "`#[oidc::{}]` applies to a handler function (`async fn`){what}",
                    mode.name()
                ),
            );
            let errors = diag.into_compile_errors();
            return quote::quote!(#item #errors);
        }
    };
    let model = model::build(mode, args, &function, &mut diag);
    if diag.has_errors() {
        let errors = diag.into_compile_errors();
        // A second `required`/`optional` below this one has been reported; expanding it too
        // would only add errors about the same mistake.
        let mut function = function;
        function
            .attrs
            .retain(|attr| model::guard_attribute(attr).is_none());
        return quote::quote!(#function #errors);
    }
    expand::expand(&model, function)
}
