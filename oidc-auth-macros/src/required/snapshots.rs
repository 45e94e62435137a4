//! Expansion tests: representative inputs, expanded and formatted with prettyplease, compared
//! with the checked-in files under `tests/expand/`. Set `OIDC_AUTH_BLESS=1` to rewrite them
//! after an intended change, then review the diff.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Mode, expand};

fn check(name: &str, mode: Mode, attr: TokenStream, item: TokenStream) {
    let expanded = expand(mode, attr, item);
    let mut file: syn::File = syn::parse2(expanded).expect("the expansion is valid Rust");
    // The two shapes a `handler_shape!` chooses from, each formatted on its own.
    let mut shapes = String::new();
    file.items.retain(|item| {
        let syn::Item::Macro(shape) = item else {
            return true;
        };
        if shape
            .mac
            .path
            .segments
            .last()
            .is_none_or(|s| s.ident != "handler_shape")
        {
            return true;
        }
        let groups: Vec<_> = shape.mac.tokens.clone().into_iter().collect();
        for (label, group) in ["without actix-web", "with actix-web"].iter().zip(groups) {
            let proc_macro2::TokenTree::Group(group) = group else {
                panic!("handler_shape! takes two groups");
            };
            let shape: syn::File = syn::parse2(group.stream()).expect("a shape is valid Rust");
            shapes.push_str(&format!("// handler_shape!, {label}:\n"));
            shapes.push_str(&prettyplease::unparse(&shape));
        }
        false
    });
    let pretty = prettyplease::unparse(&file) + &shapes;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expand")
        .join(format!("{name}.expanded.rs"));
    if std::env::var_os("OIDC_AUTH_BLESS").is_some() {
        std::fs::write(&path, &pretty).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        pretty, expected,
        "expansion of {name} changed; run with OIDC_AUTH_BLESS=1 and review"
    );
}

#[test]
fn required_with_scopes_and_claims() {
    check(
        "required_scopes_claims",
        Mode::Required,
        quote!(
            scopes = "admin read",
            claims(
                groups = "admins",
                "realm_access.roles" = ["ops", "sre"],
                email_verified = true,
                level = 3
            )
        ),
        quote!(
            pub async fn admin(state: State<App>, token: IdToken) -> impl IntoResponse {
                token.sub().to_owned()
            }
        ),
    );
}

#[test]
fn required_without_a_token_parameter() {
    check(
        "required_no_token",
        Mode::Required,
        quote!(),
        quote!(
            async fn ping() -> &'static str {
                "pong"
            }
        ),
    );
}

#[test]
fn required_with_declared_scopes_and_a_crate_path() {
    check(
        "required_declared_crate",
        Mode::Required,
        quote!(
            scopes = [AppScope::Admin, "billing:write"],
            crate = "crate::deps::oidc_auth"
        ),
        quote!(
            async fn refund(mut token: oidc::IdToken, body: Json<Refund>) -> Result<String, Error> {
                Ok(token.sub().to_owned())
            }
        ),
    );
}

#[test]
fn optional_with_a_token() {
    check(
        "optional_token",
        Mode::Optional,
        quote!(scopes = ["beta"]),
        quote!(
            async fn feed(token: Option<IdToken>) -> String {
                format!("{}", token.is_some())
            }
        ),
    );
}

/// The guard goes first and the other parameters, a body extractor written before the token
/// included, are gathered behind it in one `Guarded`, so that actix-web authenticates before it
/// creates the body extractor.
#[test]
fn required_moves_the_token_in_front_of_the_body() {
    check(
        "required_token_after_body",
        Mode::Required,
        quote!(scopes = "upload"),
        quote!(
            async fn upload(
                body: web::Json<Upload>,
                query: web::Query<Q>,
                mut token: IdToken,
            ) -> String {
                token.sub().to_owned()
            }
        ),
    );
}

/// The same for `optional`.
#[test]
fn optional_moves_the_token_in_front_of_the_body() {
    check(
        "optional_token_after_body",
        Mode::Optional,
        quote!(),
        quote!(
            async fn upload(body: web::Json<Upload>, token: Option<IdToken>) -> String {
                format!("{}", token.is_some())
            }
        ),
    );
}

/// Every other parameter is checked not to be the token under another name, in a function
/// with the handler's generics, so that types naming them resolve; a type holding
/// `impl Trait`, which no such function can name, is left out.
#[test]
fn other_parameters_are_checked_with_the_handlers_generics() {
    check(
        "required_generic_handler",
        Mode::Required,
        quote!(scopes = "write"),
        quote!(
            async fn store<'a, T>(token: IdToken, body: Json<T>, sink: (impl Sink, u8)) -> String
            where
                T: DeserializeOwned + 'a,
            {
                token.sub().to_owned()
            }
        ),
    );
}

#[test]
fn an_error_keeps_the_function_and_adds_the_message() {
    check(
        "error_keeps_function",
        Mode::Required,
        quote!(scope = "admin"),
        quote!(
            async fn admin(token: IdToken) -> String {
                token.sub().to_owned()
            }
        ),
    );
}
