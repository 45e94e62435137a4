//! axum integration (feature `axum`): [`Authorized`] and [`IdToken`] as extractors, and
//! [`AuthRejection`] as a response.
//!
//! The guards look for the [`OidcAuth`] handle in the request extensions first, then in the
//! router state. The state may be `OidcAuth` itself (`.with_state(auth)`) or any state `S` for
//! which `OidcAuth: FromRef<S>` holds: write that impl by hand, or derive `FromRef` on the state
//! with axum's `macros` feature. A guarded handler on a router of any other state does not
//! compile ("the router state ... gives no `OidcAuth`"), even with an `Extension`: the extension
//! alone serves routers of state `()`.
//!
//! Prefer the state. A router of state `()` compiles whether or not it is ever given the handle,
//! and without it every guarded route (`#[oidc::required]` and `#[oidc::optional]` alike)
//! answers 500 and logs an error. `.layer(Extension(auth))` applies only to the routes added
//! before it, so add that layer last.
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_auth::{IdToken, OidcAuth};
//!
//! async fn me(token: IdToken) -> String {
//!     token.sub().to_owned()
//! }
//!
//! fn app(auth: OidcAuth) -> Router {
//!     Router::new().route("/me", get(me)).with_state(auth)
//! }
//! ```

mod router;

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::OidcAuth;
use crate::guard::{self, AuthRejection, Authorized, Guarded, MaybeAuthorized};
use crate::policy::{NoPolicy, Policy};
use crate::token::IdToken;

pub use router::{auth_router, auth_router_for};

/// Router states from which an [`OidcAuth`] can be taken.
///
/// Implemented for every state `S` with `OidcAuth: FromRef<S>` (including `OidcAuth` itself),
/// and for `()`, whose routers find the handle in an `Extension`.
#[diagnostic::on_unimplemented(
    message = "the router state `{Self}` gives no `OidcAuth`",
    note = "derive `axum::extract::FromRef` on the state with an `OidcAuth` field, or use `.with_state(auth)`"
)]
pub trait AuthState {
    /// The handle held by this state, if any.
    fn oidc_auth(&self) -> Option<OidcAuth>;
}

impl<S> AuthState for S
where
    OidcAuth: FromRef<S>,
{
    fn oidc_auth(&self) -> Option<OidcAuth> {
        Some(OidcAuth::from_ref(self))
    }
}

impl AuthState for () {
    fn oidc_auth(&self) -> Option<OidcAuth> {
        None
    }
}

fn find<S: AuthState>(parts: &Parts, state: &S) -> Option<OidcAuth> {
    parts
        .extensions
        .get::<OidcAuth>()
        .cloned()
        .or_else(|| state.oidc_auth())
}

fn authorization(parts: &Parts) -> impl Iterator<Item = &[u8]> {
    parts
        .headers
        .get_all(AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes)
}

impl<S, P> FromRequestParts<S> for Authorized<P>
where
    S: AuthState + Send + Sync,
    P: Policy,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = find(parts, state);
        guard::authorize::<P>(auth.as_ref(), authorization(parts))
            .await
            .map(|token| Authorized(token, PhantomData))
    }
}

impl<S, P> OptionalFromRequestParts<S> for Authorized<P>
where
    S: AuthState + Send + Sync,
    P: Policy,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let auth = find(parts, state);
        guard::authorize_optional::<P>(auth.as_ref(), authorization(parts))
            .await
            .map(|token| token.map(|token| Authorized(token, PhantomData)))
    }
}

impl<S, P> FromRequestParts<S> for MaybeAuthorized<P>
where
    S: AuthState + Send + Sync,
    P: Policy,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = find(parts, state);
        guard::authorize_optional::<P>(auth.as_ref(), authorization(parts))
            .await
            .map(|token| MaybeAuthorized(token, PhantomData))
    }
}

impl<S> FromRequestParts<S> for IdToken
where
    S: AuthState + Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Authorized<NoPolicy> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Authorized::into_token)
    }
}

impl<S> OptionalFromRequestParts<S> for IdToken
where
    S: AuthState + Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        <Authorized<NoPolicy> as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|found| found.map(Authorized::into_token))
    }
}

/// The extractor marker of [`Guarded`]: `M` is the marker of its other extractors (axum's own,
/// for parts or for a body). Being distinct from axum's markers keeps the implementation apart
/// from axum's blanket one for parts extractors.
pub struct ViaGuarded<M>(PhantomData<fn() -> M>);

/// The guard first, then the rest, which may include the body extractor (last, as axum
/// requires). axum would run a parts guard first anyway; this keeps the order explicit and the
/// same as on actix-web.
impl<S, M, G, R> FromRequest<S, ViaGuarded<M>> for Guarded<G, R>
where
    S: Send + Sync,
    G: FromRequestParts<S> + Send,
    R: FromRequest<S, M> + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let guard = G::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let rest = R::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Guarded(guard, rest))
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let rendered = self.response();
        let mut response = Response::new(axum::body::Body::from(rendered.body.clone()));
        *response.status_mut() =
            StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // `OidcAuth::render` has left out, and logged, any header that is not valid HTTP; the
        // conversions below cannot fail for the others.
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(rendered.content_type)
            && !rendered.content_type.is_empty()
        {
            headers.insert(axum::http::header::CONTENT_TYPE, value);
        }
        for (name, value) in &rendered.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(*name), HeaderValue::from_str(value))
            {
                headers.append(name, value);
            }
        }
        response
    }
}
