//! `#[derive(Scopes)]`: an application declares its scopes once, as an enum; handlers name them
//! as paths (`scopes = [AppScope::Admin]`), so a misspelt scope is a compile error with the
//! compiler's own suggestion of the nearest variant.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diag::{Diagnostics, did_you_mean};

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
    let krate = crate_path(&input.attrs, &mut diag);
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
    // Only the trait: an inherent `ALL` or `as_str` would collide with the enum's own items.
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::__private::ScopeEnum for #ident {
                const ALL: &'static [&'static ::core::primitive::str] = &[#(#all),*];

                fn as_str(&self) -> &'static ::core::primitive::str {
                    match self {
                        #(#arms,)*
                    }
                }
            }

            #[automatically_derived]
            impl #krate::__private::DerivedScopes for #ident {
                const ALL: &'static [&'static ::core::primitive::str] =
                    <Self as #krate::__private::ScopeEnum>::ALL;
            }
        };
    }
}

/// The path of the runtime crate: `::oidc_auth`, or what `#[scopes(crate = "...")]` names.
fn crate_path(attrs: &[syn::Attribute], diag: &mut Diagnostics) -> syn::Path {
    let mut krate = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("scopes")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("crate") {
                let name = quote::ToTokens::to_token_stream(&meta.path).to_string();
                let hint = match did_you_mean(&name, &["crate"]) {
                    Some(_) => "did you mean `crate`?",
                    None => "the only one is `crate = \"...\"`",
                };
                return Err(meta.error(format!(
                    "`#[derive(oidc::Scopes)]`: unknown argument `{name}` in `#[scopes(...)]`; {hint}"
                )));
            }
            let lit: LitStr = meta.value()?.parse()?;
            match lit.parse::<syn::Path>() {
                Ok(path) => krate = Some(path),
                Err(_) => diag.error(
                    lit.span(),
                    "`#[derive(oidc::Scopes)]`: `crate` must be a path such as \"::oidc_auth\"",
                ),
            }
            Ok(())
        });
        if let Err(e) = parsed {
            diag.push(e);
        }
    }
    krate.unwrap_or_else(|| syn::parse_quote!(::oidc_auth))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::{derive, snake_case};

    #[test]
    fn variant_names_become_snake_case_scopes() {
        assert_eq!(snake_case("Admin"), "admin");
        assert_eq!(snake_case("ReadUser"), "read_user");
    }

    /// The items the expansion adds, parsed.
    fn expanded(input: proc_macro2::TokenStream) -> Vec<syn::Item> {
        let file: syn::File = syn::parse2(derive(input)).expect("the expansion is valid Rust");
        file.items
    }

    #[test]
    fn the_derive_adds_no_inherent_items_to_the_enum() {
        let items = expanded(quote!(
            enum AppScope {
                Admin,
            }
        ));
        let inherent = items
            .iter()
            .any(|item| matches!(item, syn::Item::Impl(i) if i.trait_.is_none()));
        assert!(
            !inherent,
            "an inherent impl would collide with the enum's own `as_str`"
        );
        let [syn::Item::Const(_)] = items.as_slice() else {
            panic!(
                "one `const _` holding the trait impl, got {} items",
                items.len()
            );
        };
    }

    #[test]
    fn the_crate_attribute_names_the_runtime_crate() {
        let tokens = derive(quote!(
            #[scopes(crate = "crate::reexport::oidc")]
            enum AppScope {
                Admin,
            }
        ))
        .to_string();
        assert!(
            tokens.contains("crate :: reexport :: oidc :: __private :: ScopeEnum"),
            "{tokens}"
        );
        assert!(!tokens.contains("oidc_auth"), "{tokens}");
    }
}
