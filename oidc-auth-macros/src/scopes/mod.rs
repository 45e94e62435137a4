//! `#[derive(Scopes)]`: an application declares its scopes once, as an enum; handlers name them
//! as paths (`scopes = [AppScope::Admin]`), so a misspelt scope is a compile error with the
//! compiler's own suggestion of the nearest variant.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diag::Diagnostics;

/// `ReadUser` -> `read_user`.
fn snake_case(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut diag = Diagnostics::default();
    let Data::Enum(data) = &input.data else {
        return syn::Error::new_spanned(
            &input.ident,
            "`#[derive(oidc::Scopes)]` applies to an enum with one unit variant per scope",
        )
        .to_compile_error();
    };
    if !input.generics.params.is_empty() {
        diag.error_spanned(
            &input.generics,
            "`#[derive(oidc::Scopes)]`: a scope enum cannot be generic",
        );
    }
    let mut arms = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            diag.error_spanned(
                &variant.fields,
                format!("`#[derive(oidc::Scopes)]`: variant `{}` has fields; each scope is a unit variant", variant.ident),
            );
            continue;
        }
        let mut value = snake_case(&variant.ident.to_string());
        let mut span = variant.ident.span();
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("scope")) {
            match attr.parse_args::<LitStr>() {
                Ok(lit) => {
                    value = lit.value();
                    span = lit.span();
                }
                Err(_) => diag.error_spanned(
                    attr,
                    "`#[derive(oidc::Scopes)]`: write the scope as `#[scope(\"read:user\")]`",
                ),
            }
        }
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
        {
            diag.error(
                span,
                format!(
                    "`#[derive(oidc::Scopes)]`: `{}` is not a valid scope; use printable ASCII other than space, `\"` and `\\`",
                    value.escape_default()
                ),
            );
        } else if names.iter().any(|(n, _)| *n == value) {
            diag.error(
                span,
                format!("`#[derive(oidc::Scopes)]`: scope `{value}` is declared twice"),
            );
        }
        let ident = &variant.ident;
        arms.push(quote!(Self::#ident => #value));
        names.push((value, span));
    }
    let ident = &input.ident;
    let all = names.iter().map(|(n, _)| n);
    let errors = diag.into_compile_errors();
    quote! {
        #errors
        impl #ident {
            /// Every declared scope, in declaration order.
            pub const ALL: &'static [&'static str] = &[#(#all),*];

            /// The scope token this variant stands for.
            pub const fn as_str(&self) -> &'static str {
                match self {
                    #(#arms,)*
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn variant_names_become_snake_case_scopes() {
        assert_eq!(snake_case("Admin"), "admin");
        assert_eq!(snake_case("ReadUser"), "read_user");
    }
}
