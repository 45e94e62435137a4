//! Procedural macros of `oidc-auth`. Use them through the `oidc-auth` crate, which re-exports
//! them: `#[oidc_auth::required]`, `#[oidc_auth::optional]`, `#[oidc_auth::auth_router]` and
//! `#[derive(oidc_auth::Scopes)]`.
//! The documentation with examples is on those re-exports.

mod args;
mod auth_router;
mod diag;
mod required;
mod scope_token;
mod scopes;

use proc_macro::TokenStream;

/// Protects a handler: see `oidc_auth::required`.
#[proc_macro_attribute]
pub fn required(attr: TokenStream, item: TokenStream) -> TokenStream {
    required::expand(required::Mode::Required, attr.into(), item.into()).into()
}

/// Optional authentication for a handler: see `oidc_auth::optional`.
#[proc_macro_attribute]
pub fn optional(attr: TokenStream, item: TokenStream) -> TokenStream {
    required::expand(required::Mode::Optional, attr.into(), item.into()).into()
}

/// Declares an application's scopes: see `oidc_auth::Scopes`. A variant stands for its name in
/// snake case, a run of capitals being one word (`APIRead` is `api_read`), unless
/// `#[scope("...")]` names the scope.
#[proc_macro_derive(Scopes, attributes(scope, scopes))]
pub fn derive_scopes(input: TokenStream) -> TokenStream {
    scopes::derive(input.into()).into()
}

/// Declares the auth endpoints' routes: see `oidc_auth::auth_router`.
#[proc_macro_attribute]
pub fn auth_router(attr: TokenStream, item: TokenStream) -> TokenStream {
    auth_router::expand(attr.into(), item.into()).into()
}
