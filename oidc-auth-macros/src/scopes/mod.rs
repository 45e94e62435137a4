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
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        diag.error_spanned(
            &input.generics,
            "`#[derive(oidc::Scopes)]`: a scope enum cannot be generic",
        );
    }
    if data.variants.is_empty() {
        diag.error_spanned(
            ident,
            format!("`#[derive(oidc::Scopes)]`: `{ident}` declares no scopes; add one unit variant per scope"),
        );
    }
    let mut names: Vec<(String, String)> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            diag.error_spanned(
                &variant.fields,
                format!("`#[derive(oidc::Scopes)]`: variant `{}` has fields; each scope is a unit variant", variant.ident),
            );
        }
        if let Some((_, discriminant)) = &variant.discriminant {
            diag.error_spanned(
                discriminant,
                format!("`#[derive(oidc::Scopes)]`: variant `{}` has an explicit discriminant; remove it (scopes are looked up by position)", variant.ident),
            );
        }
        let mut value = snake_case(&variant.ident.to_string());
        let mut span: Span = variant.ident.span();
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
        let problem = if value.is_empty() {
            Some("is empty".to_owned())
        } else if value.contains(' ') {
            Some("contains a space; declare one variant per scope".to_owned())
        } else {
            value
                .chars()
                .find(|c| !(*c == '!' || ('#'..='[').contains(c) || (']'..='~').contains(c)))
                .map(|c| format!("contains `{}`, which RFC 6749 does not allow; use printable ASCII other than space, `\"` and `\\`", c.escape_debug()))
        };
        if let Some(problem) = problem {
            diag.error(
                span,
                format!(
                    "`#[derive(oidc::Scopes)]`: scope `{}` {problem}",
                    value.escape_debug()
                ),
            );
        } else if let Some((_, other)) = names.iter().find(|(n, _)| *n == value) {
            diag.error(
                span,
                format!("`#[derive(oidc::Scopes)]`: scope `{value}` is declared twice (also by `{other}`); rename the variant or give it another `#[scope(\"...\")]`"),
            );
        }
        names.push((value, variant.ident.to_string()));
    }
    if diag.has_errors() {
        // No impl at all on error, so the compiler adds nothing to the messages above.
        return diag.into_compile_errors();
    }
    let all = names.iter().map(|(n, _)| n);
    let arms = data.variants.iter().zip(&names).map(|(v, (n, _))| {
        let variant = &v.ident;
        quote!(Self::#variant => #n)
    });
    quote! {
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

        const _: () = {
            impl ::oidc_auth::__private::ScopeEnum for #ident {
                const ALL: &'static [&'static str] = #ident::ALL;
            }
        };
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
