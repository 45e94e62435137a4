//! `#[derive(Scopes)]`: an application declares its scopes once, as an enum; handlers name them
//! as paths (`scopes = [AppScope::Admin]`), so a misspelt scope is a compile error with the
//! compiler's own suggestion of the nearest variant.
//!
//! A variant stands for its name in snake case, a run of capitals being one word (`ReadUser` is
//! `read_user`, `APIRead` is `api_read`, `OpenID` is `open_id`), unless `#[scope("...")]` names
//! the scope.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diag::{Diagnostics, did_you_mean};
use crate::scope_token;

/// A variant's name as a scope: `ReadUser` -> `read_user`, `APIRead` -> `api_read`. A word
/// starts at a capital that follows a lower-case letter or a digit, and at the last capital of a
/// run that a lower-case letter follows (`API|Read`).
fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// What is wrong with `value` as a declared scope, if anything.
fn scope_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(
            "empty scope in `#[scope(\"\")]`; name the scope, or remove the attribute to use the variant's name"
                .to_owned(),
        );
    }
    if value.trim().is_empty() {
        return Some(format!(
            "scope `{value:?}` is blank; name the scope, or remove the attribute to use the variant's name"
        ));
    }
    if value.contains(',') {
        let words = scope_token::split_at_commas(value);
        let attrs: Vec<String> = words
            .iter()
            .map(|w| format!("`#[scope(\"{w}\")]`"))
            .collect();
        let fix = match attrs.as_slice() {
            [] => "name the scope".to_owned(),
            [one] => format!("write {one}"),
            [init @ .., last] => format!(
                "declare {} and {last} on separate variants",
                init.join(", ")
            ),
        };
        return Some(format!(
            "scope `{value}` contains a comma; scopes are separated by spaces, and a variant declares one scope: {fix}"
        ));
    }
    if value.contains(' ') {
        return Some(format!(
            "scope `{value}` contains a space; declare one variant per scope"
        ));
    }
    scope_token::bad_character(value)
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
    // Each helper attribute has one place; elsewhere it would be ignored without a word.
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("scope")) {
        diag.error_spanned(
            attr,
            format!("`#[derive(oidc::Scopes)]`: `#[scope(...)]` names the scope of one variant, not of the enum; put it on a variant of `{ident}` (the crate path goes in `#[scopes(crate = \"...\")]`)"),
        );
    }
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
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("scopes")) {
            diag.error_spanned(
                attr,
                format!("`#[derive(oidc::Scopes)]`: `#[scopes(...)]` applies to the whole enum, not to variant `{}`; put it on the enum, or name this variant's scope with `#[scope(\"...\")]`", variant.ident),
            );
        }
        let mut value = snake_case(&variant.ident.to_string());
        let mut span: Span = variant.ident.span();
        let mut named = false;
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("scope")) {
            if named {
                // The first one names the scope; a second would silently replace it.
                diag.error_spanned(
                    attr,
                    format!("`#[derive(oidc::Scopes)]`: variant `{}` has a second `#[scope(...)]`; a variant declares one scope: keep one, and declare another scope as another variant", variant.ident),
                );
                continue;
            }
            named = true;
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
        if let Some(problem) = scope_problem(&value) {
            diag.error(span, format!("`#[derive(oidc::Scopes)]`: {problem}"));
        } else if let Some((_, other)) = names.iter().find(|(n, _)| *n == value) {
            diag.error(
                span,
                format!("`#[derive(oidc::Scopes)]`: scope `{value}` is declared twice (also by `{other}`); rename the variant or give it another `#[scope(\"...\")]`"),
            );
        }
        names.push((value, variant.ident.to_string()));
    }
    let Some(krate) = krate else {
        // A `#[scopes(...)]` that could not be read may have named the crate: `::oidc_auth`
        // might not resolve, so no impl is emitted.
        return diag.into_compile_errors();
    };
    let all = names.iter().map(|(n, _)| n);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let as_str = if diag.has_errors() {
        // The build fails on the errors below, so this never runs; the impls stay so that the
        // enum's uses (`scopes = [AppScope::Admin]`, `AppScope::ALL`) add no errors of their own.
        quote!(::core::unreachable!())
    } else {
        let arms = data.variants.iter().zip(&names).map(|(v, (n, _))| {
            let variant = &v.ident;
            quote!(Self::#variant => #n)
        });
        quote!(match self { #(#arms,)* })
    };
    let errors = diag.into_compile_errors();
    // Only the trait: an inherent `ALL` or `as_str` would collide with the enum's own items.
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::__private::ScopeEnum for #ident #ty_generics #where_clause {
                const ALL: &'static [&'static ::core::primitive::str] = &[#(#all),*];

                fn as_str(&self) -> &'static ::core::primitive::str {
                    #as_str
                }
            }

            #[automatically_derived]
            impl #impl_generics #krate::__private::DerivedScopes for #ident #ty_generics #where_clause {
                const ALL: &'static [&'static ::core::primitive::str] =
                    <Self as #krate::__private::ScopeEnum>::ALL;
            }
        };
        #errors
    }
}

/// The path of the runtime crate: `::oidc_auth`, or what `#[scopes(crate = "...")]` names;
/// `None` when a `#[scopes(...)]` could not be read (it has been reported).
fn crate_path(attrs: &[syn::Attribute], diag: &mut Diagnostics) -> Option<syn::Path> {
    let mut unreadable = false;
    let mut krate = None;
    let mut crate_given = false;
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
            if crate_given {
                // The first `crate` names the crate; a second would silently replace it.
                diag.error_spanned(
                    &meta.path,
                    "`#[derive(oidc::Scopes)]`: `crate` is given twice; name the crate once, in one `#[scopes(crate = \"...\")]`",
                );
                return Ok(());
            }
            crate_given = true;
            match lit.parse::<syn::Path>() {
                Ok(path) => krate = Some(path),
                Err(_) => {
                    unreadable = true;
                    diag.error(
                        lit.span(),
                        "`#[derive(oidc::Scopes)]`: `crate` must be a path such as \"::oidc_auth\"",
                    );
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            unreadable = true;
            diag.push(e);
        }
    }
    match krate {
        Some(path) => Some(path),
        None if unreadable => None,
        None => Some(syn::parse_quote!(::oidc_auth)),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::{derive, snake_case};

    #[test]
    fn variant_names_become_snake_case_scopes() {
        assert_eq!(snake_case("Admin"), "admin");
        assert_eq!(snake_case("ReadUser"), "read_user");
        assert_eq!(snake_case("ReadWrite"), "read_write");
    }

    #[test]
    fn a_run_of_capitals_is_one_word() {
        assert_eq!(snake_case("APIRead"), "api_read");
        assert_eq!(snake_case("OpenID"), "open_id");
        assert_eq!(snake_case("ReadHTTP"), "read_http");
        assert_eq!(snake_case("API"), "api");
        assert_eq!(snake_case("ReadAPIKeys"), "read_api_keys");
    }

    #[test]
    fn digits_stay_in_their_word_and_underscores_are_not_doubled() {
        assert_eq!(snake_case("Read2"), "read2");
        assert_eq!(snake_case("V2Read"), "v2_read");
        assert_eq!(snake_case("Read_User"), "read_user");
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
    fn an_error_keeps_the_trait_impls_beside_it() {
        let tokens = derive(quote!(
            enum AppScope {
                #[scope("admin, read")]
                Admin,
                Read,
            }
        ))
        .to_string();
        assert!(tokens.contains("compile_error"), "{tokens}");
        assert!(
            tokens.contains("__private :: ScopeEnum for AppScope"),
            "{tokens}"
        );
        assert!(
            tokens.contains("__private :: DerivedScopes for AppScope"),
            "{tokens}"
        );
    }

    #[test]
    fn an_unreadable_crate_attribute_leaves_out_the_impls() {
        let tokens = derive(quote!(
            #[scopes(crate = "not a path")]
            enum AppScope {
                Admin,
            }
        ))
        .to_string();
        assert!(tokens.contains("compile_error"), "{tokens}");
        assert!(!tokens.contains("ScopeEnum"), "{tokens}");
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
