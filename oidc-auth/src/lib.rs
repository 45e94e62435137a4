//! OpenID Connect bearer validation and route protection for axum and actix-web.
//!
//! One framework-independent core ([`OidcAuth`]) validates tokens against your identity
//! provider: discovery, a rotation-aware JWKS cache, exact issuer and audience checks, expiry
//! with leeway, scopes and claim constraints. Thin adapters make it an extractor in each
//! framework:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use oidc_auth::{Authorized, ClaimRule, ClaimValue, IdToken, OidcAuth, OidcConfig, Policy};
//!
//! struct Admins;
//! impl Policy for Admins {
//!     const SCOPES: &'static [&'static str] = &["admin"];
//!     const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new("groups", &[ClaimValue::Str("admins")])];
//! }
//!
//! async fn me(token: IdToken) -> String {
//!     token.sub().to_owned()
//! }
//!
//! async fn admin(Authorized(token, ..): Authorized<Admins>) -> String {
//!     format!("hello admin {}", token.sub())
//! }
//!
//! async fn feed(token: Option<IdToken>) -> String {
//!     format!("signed in: {}", token.is_some())
//! }
//!
//! # fn main() -> Result<(), oidc_auth::ConfigError> {
//! let config = OidcConfig::builder()
//!     .discovery_url("https://idp.example/realms/main/.well-known/openid-configuration")
//!     .client_id("my-api")
//!     .audience("my-api")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/admin", get(admin))
//!     .route("/feed", get(feed))
//!     .with_state(OidcAuth::new(config));
//! # Ok(()) }
//! # }
//! ```
//!
//! Failures answer with the right status and an RFC 6750 challenge: 401 for a missing or
//! invalid token, 400 for a malformed header, 403 for a missing scope or claim, 503 (with
//! `Retry-After`) while the provider cannot be reached. The body is always
//! `{"detail", "error", "error_description"}`.
//!
//! Features:
//!
//! - `axum`: the axum extractors and the auth endpoints as a `Router` (axum 0.8);
//! - `actix-web`: the actix-web extractors and the auth endpoints as a `Scope` or an
//!   `App::configure` function (actix-web 4);
//! - `testing`: an in-process [`testing::MockProvider`] and a token factory for tests;
//! - `sqlite` (default): the SQLite store backend, broker mode's default store (a file under
//!   the platform data directory);
//! - `postgres`: the PostgreSQL store backend;
//! - `mysql`: the MySQL / MariaDB store backend;
//! - `mongodb`: the MongoDB store backend.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod auth;
mod broker;
mod clock;
mod config;
mod error;
mod flow;
mod guard;
mod percent;
mod policy;
mod provider;
mod secret;
pub mod store;
mod token;

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use auth::{OidcAuth, OidcAuthBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, OidcConfig, OidcConfigBuilder};
pub use error::{AuthError, ErrorBody, ErrorKind, ErrorRenderer, ErrorResponse};
pub use flow::{AuthEndpoint, AuthRouterSpec, AuthRoutes, EndpointResponse, check_form_type};
pub use guard::{AuthRejection, Authorized, Guarded, MaybeAuthorized};
pub use policy::{ClaimConstraint, ClaimRule, ClaimValue, NoPolicy, Policy, Scopes};
pub use secret::{Audience, Issuer, Kid, Scope, Secret};
pub use token::IdToken;

#[cfg(feature = "testing")]
pub mod testing;

#[doc = include_str!("../docs/required.md")]
pub use oidc_auth_macros::required;

#[doc = include_str!("../docs/optional.md")]
pub use oidc_auth_macros::optional;

#[doc = include_str!("../docs/scopes.md")]
pub use oidc_auth_macros::Scopes;

#[doc = include_str!("../docs/auth_router.md")]
pub use oidc_auth_macros::auth_router;

// The methods `#[auth_router]` adds to its struct depend on this crate's features, never on the
// user's: each framework's variant of the macro is compiled in or stubbed here.
#[cfg(feature = "axum")]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_axum_methods {
    ($ty:ident) => {
        impl $ty {
            /// The auth endpoints as an axum `Router`, to merge into the application.
            pub fn router<S>(auth: $crate::OidcAuth) -> $crate::__private::axum::Router<S>
            where
                S: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                $crate::axum::auth_router_for::<Self, S>(auth)
            }
        }
    };
}

#[cfg(not(feature = "axum"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_axum_methods {
    ($ty:ident) => {};
}

#[cfg(feature = "actix-web")]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_actix_methods {
    ($ty:ident, $prefix:tt) => {
        impl $ty {
            /// The auth endpoints as a function for `App::configure`.
            pub fn configure(
                auth: $crate::OidcAuth,
            ) -> impl ::core::ops::Fn(&mut $crate::__private::actix_web::web::ServiceConfig)
            + ::core::clone::Clone {
                $crate::actix::auth_config(
                    auth,
                    <Self as $crate::__private::AuthRouterSpec>::routes(),
                )
            }
        }
        $crate::__oidc_auth_actix_scope!($ty, $prefix);
    };
}

/// The `scope` method of an `#[auth_router]`, which depends on whether it has a prefix.
#[cfg(feature = "actix-web")]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_actix_scope {
    // No prefix: no scope, since a scope at "" would take every request of the application.
    ($ty:ident, "") => {
        impl $ty {
            /// The auth endpoints as services for `App::service`, each a resource at its path.
            ///
            /// This router has no prefix, so there is no scope: one at `""` would take every
            /// request and hide the application's other routes. These resources leave them
            /// reachable; add your own routes to the `App`.
            pub fn scope(
                auth: $crate::OidcAuth,
            ) -> impl $crate::__private::actix_web::dev::HttpServiceFactory + 'static {
                $crate::actix::auth_services(
                    auth,
                    &<Self as $crate::__private::AuthRouterSpec>::routes(),
                )
            }
        }
    };
    ($ty:ident, $prefix:tt) => {
        impl $ty {
            /// The auth endpoints as an actix-web `Scope` at the prefix, to which the
            /// application may add its own routes.
            ///
            /// The scope takes every path below the prefix: a route below it registered on the
            /// `App` after the scope is never reached. Add such routes to the scope, or mount the
            /// endpoints with `configure(auth)` instead.
            pub fn scope(auth: $crate::OidcAuth) -> $crate::__private::actix_web::Scope {
                $crate::actix::auth_scope_for::<Self>(auth)
            }
        }
    };
}

#[cfg(not(feature = "actix-web"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_actix_methods {
    ($ty:ident, $prefix:tt) => {};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_router_methods {
    ($ty:ident, $prefix:tt) => {
        $crate::__oidc_auth_axum_methods!($ty);
        $crate::__oidc_auth_actix_methods!($ty, $prefix);
    };
}

/// The shape of a protected handler with more parameters than the token, as
/// `#[oidc::required]` and `#[oidc::optional]` emit it: with the `actix-web` feature the
/// second, where the other parameters are gathered behind the guard in one
/// [`Guarded`](crate::Guarded) (actix-web would otherwise poll them beside the guard); without
/// it the first, the guard simply the first parameter (axum extracts it before any body).
#[cfg(feature = "actix-web")]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_handler_shape {
    ({ $($plain:tt)* } { $($guarded:tt)* }) => { $($guarded)* };
}

/// See the `actix-web` version of this macro.
#[cfg(not(feature = "actix-web"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __oidc_auth_handler_shape {
    ({ $($plain:tt)* } { $($guarded:tt)* }) => { $($plain)* };
}

/// Items used by code that the `oidc-auth` macros generate. Not a public API: names and
/// signatures may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::__oidc_auth_handler_shape as handler_shape;
    pub use crate::__oidc_auth_router_methods as auth_router_methods;

    pub use crate::policy::Scopes as ScopeEnum;

    /// The scopes of an enum that derives [`Scopes`](crate::Scopes), in the order of its
    /// variants, which is what lets `scopes = [Enum::Variant]` find a variant's scope by its
    /// index at compile time. Only the derive implements it: a hand-written `Scopes` could
    /// list its scopes in another order, and a route would silently require another scope.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` does not derive `oidc_auth::Scopes`",
        note = "a scope named by a variant (`scopes = [{Self}::Variant]`) needs `#[derive(oidc_auth::Scopes)]` on `{Self}`; or write the scope as a string"
    )]
    pub trait DerivedScopes {
        /// Every declared scope, in the order of the variants.
        const ALL: &'static [&'static ::core::primitive::str];
    }

    /// The type of a `#[required]` handler's token parameter.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not `oidc_auth::IdToken`",
        note = "the token parameter of `#[oidc::required]` must be `oidc_auth::IdToken`; import that type"
    )]
    pub trait RequiredToken {}
    impl RequiredToken for crate::token::IdToken {}

    /// The type of an `#[optional]` handler's token parameter.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not `Option<oidc_auth::IdToken>`",
        note = "the token parameter of `#[oidc::optional]` must be `Option<oidc_auth::IdToken>`; import `oidc_auth::IdToken`"
    )]
    pub trait OptionalToken {}
    impl OptionalToken for ::core::option::Option<crate::token::IdToken> {}

    /// What the macros find a handler's other parameters to be: not the token.
    pub struct NotTheToken;
    /// What the macros find a parameter to be that is the token under another name (an import
    /// `as`, a type alias): a plain `IdToken` extractor, which would check no requirement.
    pub struct TokenUnderAnotherName;

    /// Picked by method resolution for `&&PhantomData<T>` when `T` is the token, plain, in an
    /// `Option` or in a `Result`: the macros recognise the token parameter by its spelling, so
    /// one spelled otherwise would be extracted apart from the guard, without the route's
    /// requirements, and under `#[oidc::optional]` hand the handler any valid token.
    pub trait TokenKind {
        /// [`TokenUnderAnotherName`].
        fn __oidc_auth_kind(&self) -> TokenUnderAnotherName {
            TokenUnderAnotherName
        }
    }
    impl TokenKind for &::core::marker::PhantomData<crate::token::IdToken> {}
    impl TokenKind for &::core::marker::PhantomData<::core::option::Option<crate::token::IdToken>> {}
    impl<E> TokenKind
        for &::core::marker::PhantomData<::core::result::Result<crate::token::IdToken, E>>
    {
    }

    /// Picked for every other parameter type (one level of auto-deref further than
    /// [`TokenKind`]).
    pub trait OtherKind {
        /// [`NotTheToken`].
        fn __oidc_auth_kind(&self) -> NotTheToken {
            NotTheToken
        }
    }
    impl<T: ?Sized> OtherKind for ::core::marker::PhantomData<T> {}

    /// The kind a handler's other parameter must be.
    #[diagnostic::on_unimplemented(
        message = "this parameter would extract the token without the route's requirements",
        label = "`IdToken` under another name, or in a `Result`",
        note = "the macros find the token parameter by its spelling: take the token once, as `IdToken` (`Option<IdToken>` for `#[oidc::optional]`) imported from `oidc_auth`, not through an alias, a renamed import or a `Result`"
    )]
    pub trait OtherParameter {}
    impl OtherParameter for NotTheToken {}

    /// Compiles only for [`NotTheToken`].
    pub fn other_parameter<K: OtherParameter>(_: K) {}
    pub use crate::flow::{AuthEndpoint, AuthRouterSpec, AuthRoutes};

    /// The routes of an `#[auth_router]`, which the macro has checked by stricter rules than
    /// [`AuthRoutes::path`] does.
    pub fn checked_routes(
        prefix: &'static str,
        settings: &[(AuthEndpoint, ::core::option::Option<&'static str>)],
    ) -> AuthRoutes {
        AuthRoutes::from_checked(prefix, settings)
    }
    pub use crate::guard::{Authorized, Guarded, MaybeAuthorized};
    pub use crate::policy::{ClaimRule, ClaimValue, Policy};
    pub use crate::token::IdToken;
    #[cfg(feature = "actix-web")]
    pub use ::actix_web;
    #[cfg(feature = "axum")]
    pub use ::axum;
}
