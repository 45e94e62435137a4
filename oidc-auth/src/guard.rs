//! [`Authorized`]: the framework-neutral guard of a protected route, and its rejection.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use crate::auth::OidcAuth;
use crate::error::{AuthError, ErrorKind, ErrorResponse};
use crate::policy::{NoPolicy, Policy};
use crate::token::IdToken;

/// A request whose bearer token is valid and satisfies policy `P`.
///
/// With the `axum` feature it is an extractor (`FromRequestParts` and
/// `OptionalFromRequestParts`), which axum runs before any body extractor; with `actix-web` it
/// is a `FromRequest`, which actix-web polls side by side with a handler's other extractors
/// unless they are gathered behind it in a [`Guarded`]. `#[oidc::required]` generates the
/// guard and that order; by hand it looks like this:
///
/// ```
/// use oidc_auth::{Authorized, ClaimRule, ClaimValue, Policy};
///
/// struct Admins;
/// impl Policy for Admins {
///     const SCOPES: &'static [&'static str] = &["admin"];
///     const CLAIMS: &'static [ClaimRule] = &[ClaimRule::new("groups", &[ClaimValue::Str("admins")])];
/// }
///
/// async fn admin(Authorized(token, ..): Authorized<Admins>) -> String {
///     token.sub().to_owned()
/// }
/// ```
pub struct Authorized<P: Policy = NoPolicy>(pub IdToken, pub PhantomData<fn() -> P>);

impl<P: Policy> Authorized<P> {
    /// Wraps a token that has passed policy `P`.
    pub fn new(token: IdToken) -> Self {
        Self(token, PhantomData)
    }

    /// The validated token.
    pub fn into_token(self) -> IdToken {
        self.0
    }
}

impl<P: Policy> Deref for Authorized<P> {
    type Target = IdToken;

    fn deref(&self) -> &IdToken {
        &self.0
    }
}

impl<P: Policy> fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Authorized").field(&self.0).finish()
    }
}

/// A request that may carry a valid token satisfying policy `P`: `Some` when it does, `None`
/// otherwise (no token, an invalid or insufficient one, or a provider outage, which is logged).
///
/// This is the guard `#[oidc::optional]` generates; it never rejects a request (except when no
/// `OidcAuth` is installed, which is a server error). By hand:
///
/// ```
/// use oidc_auth::{MaybeAuthorized, NoPolicy};
///
/// async fn feed(MaybeAuthorized(token, ..): MaybeAuthorized<NoPolicy>) -> String {
///     format!("signed in: {}", token.is_some())
/// }
/// ```
pub struct MaybeAuthorized<P: Policy = NoPolicy>(pub Option<IdToken>, pub PhantomData<fn() -> P>);

impl<P: Policy> MaybeAuthorized<P> {
    /// The token, if the request carried a valid one.
    pub fn into_token(self) -> Option<IdToken> {
        self.0
    }
}

impl<P: Policy> fmt::Debug for MaybeAuthorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MaybeAuthorized").field(&self.0).finish()
    }
}

/// A guard `G` and the handler's other extractors `R`, extracted in that order: `R` (a tuple
/// of extractors, or a single one) is only built once the guard has let the request through.
///
/// This is what `#[oidc::required]` and `#[oidc::optional]` give a handler that takes more than
/// the token, with the `actix-web` feature. axum already runs every parts extractor before the
/// body one, but actix-web creates
/// a handler's extractors together and polls them side by side, so a body extractor could
/// answer first (413, or a content-type or deserialize error that describes the expected body)
/// while the guard was still fetching the provider's keys for a forged token. Inside `Guarded`
/// the body is not touched until the guard has accepted the request; a refusal is the guard's
/// own answer.
///
/// By hand, for actix-web or axum alike (`String` is the request body on both):
///
/// ```
/// use oidc_auth::{Authorized, Guarded, NoPolicy};
///
/// async fn post_note(
///     Guarded(Authorized(token, ..), (note,)): Guarded<Authorized<NoPolicy>, (String,)>,
/// ) -> String {
///     format!("{}: {note}", token.sub())
/// }
/// ```
///
/// `G` is a guard that reads no body ([`Authorized`], [`MaybeAuthorized`], `IdToken`): on
/// actix-web it is given an empty payload, which the rest then receives whole; on axum it must
/// be a parts extractor.
pub struct Guarded<G, R>(pub G, pub R);

impl<G: fmt::Debug, R> fmt::Debug for Guarded<G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Guarded")
            .field(&self.0)
            .finish_non_exhaustive()
    }
}

/// Why a guard refused a request, with the response to send.
///
/// ```
/// use oidc_auth::{AuthError, AuthRejection, ErrorKind};
/// let rejection = AuthRejection::from(AuthError::new(ErrorKind::MissingToken, "no token"));
/// assert_eq!(rejection.response().status, 401);
/// ```
#[derive(Debug, Clone)]
pub struct AuthRejection {
    error: AuthError,
    response: ErrorResponse,
}

impl AuthRejection {
    pub(crate) fn rendered(auth: &OidcAuth, error: AuthError) -> Self {
        let response = auth.render(&error);
        Self { error, response }
    }

    pub(crate) fn misconfigured() -> Self {
        tracing::error!(
            "a protected route was called but no OidcAuth is installed (axum: state or Extension; actix-web: app_data)"
        );
        AuthError::new(
            ErrorKind::Misconfigured,
            "authentication is not configured on this server",
        )
        .into()
    }

    /// The error.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// The rendered response.
    pub fn response(&self) -> &ErrorResponse {
        &self.response
    }
}

impl From<AuthError> for AuthRejection {
    fn from(error: AuthError) -> Self {
        let response = error.to_response(None);
        Self { error, response }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for AuthRejection {}

/// The guard's whole job, shared by both frameworks.
///
/// A provider outage is logged here as well as answered with 503: on actix-web an
/// `Option<IdToken>` or `Option<Authorized<P>>` parameter goes through actix-web's own `Option`
/// extractor, which turns this refusal into `None` with nothing above a debug log, so the outage
/// would otherwise pass unseen while signed-in users became anonymous. (axum's `Option` and
/// [`MaybeAuthorized`] take [`authorize_optional`] instead, which logs it once.) One warning
/// every ten seconds at most; the others are at DEBUG.
#[cfg_attr(not(any(feature = "axum", feature = "actix-web")), allow(dead_code))]
pub(crate) async fn authorize<'a, P: Policy>(
    auth: Option<&OidcAuth>,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<IdToken, AuthRejection> {
    let Some(auth) = auth else {
        return Err(AuthRejection::misconfigured());
    };
    auth.authorize::<P>(authorization).await.map_err(|e| {
        if e.kind() == ErrorKind::Unavailable {
            auth.log_outage(crate::auth::OutageLog::NotChecked, &e);
        }
        AuthRejection::rendered(auth, e)
    })
}

/// The optional guard's job, shared by both frameworks.
#[cfg_attr(not(any(feature = "axum", feature = "actix-web")), allow(dead_code))]
pub(crate) async fn authorize_optional<'a, P: Policy>(
    auth: Option<&OidcAuth>,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<IdToken>, AuthRejection> {
    let Some(auth) = auth else {
        return Err(AuthRejection::misconfigured());
    };
    Ok(auth.authorize_optional::<P>(authorization).await)
}
