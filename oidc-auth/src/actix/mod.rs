//! actix-web integration (feature `actix-web`): [`Authorized`] and [`IdToken`] as `FromRequest`
//! extractors, and [`AuthRejection`] as a `ResponseError`.
//!
//! The [`OidcAuth`] handle is found in `app_data`, as `web::Data<OidcAuth>` or a plain
//! `OidcAuth`.
//!
//! For optional protection take [`MaybeAuthorized<P>`] (what `#[oidc::optional]` generates):
//! `None` for no token or one that is invalid or insufficient, and for a provider outage, which
//! is logged as a warning (the first, then one every ten seconds, the rest at DEBUG); a server
//! without an `OidcAuth` answers 500. `Option<IdToken>` and `Option<Authorized<P>>` work too,
//! but through actix-web's own `Option` extractor, which turns every refusal into `None` with a
//! debug log, the missing `OidcAuth` included (the provider outage is still logged as a
//! warning, paced the same way).
//!
//! ```
//! use actix_web::{App, web};
//! use oidc_auth::{IdToken, OidcAuth};
//!
//! async fn me(token: IdToken) -> String {
//!     token.sub().to_owned()
//! }
//!
//! fn configure(auth: OidcAuth) -> impl Fn(&mut web::ServiceConfig) {
//!     move |cfg| {
//!         cfg.app_data(web::Data::new(auth.clone())).route("/me", web::get().to(me));
//!     }
//! }
//! ```

mod scope;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use crate::auth::OidcAuth;
use crate::guard::{self, AuthRejection, Authorized, Guarded, MaybeAuthorized};
use crate::policy::{NoPolicy, Policy};
use crate::token::IdToken;

pub use scope::{auth_config, auth_scope, auth_scope_for, auth_services};

type Pending<T> = Pin<Box<dyn Future<Output = Result<T, AuthRejection>>>>;

fn find(req: &HttpRequest) -> Option<OidcAuth> {
    req.app_data::<web::Data<OidcAuth>>()
        .map(|data| data.get_ref().clone())
        .or_else(|| req.app_data::<OidcAuth>().cloned())
}

/// The first two `Authorization` values of the request, which is all the core needs: one is
/// the credential, a second makes the request malformed. Header values are reference-counted
/// bytes, so cloning them is cheap, and no list is allocated per request.
fn authorization_values(req: &HttpRequest) -> [Option<HeaderValue>; 2] {
    let mut values = req.headers().get_all(AUTHORIZATION);
    [values.next().cloned(), values.next().cloned()]
}

/// The check of a protected route for policy `P`, its token passed to `wrap`: one boxed
/// future per request.
fn required<P: Policy, T: 'static>(req: &HttpRequest, wrap: fn(IdToken) -> T) -> Pending<T> {
    let auth = find(req);
    let values = authorization_values(req);
    Box::pin(async move {
        guard::authorize::<P>(
            auth.as_ref(),
            values.iter().flatten().map(HeaderValue::as_bytes),
        )
        .await
        .map(wrap)
    })
}

impl<P: Policy> FromRequest for Authorized<P> {
    type Error = AuthRejection;
    type Future = Pending<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        required::<P, _>(req, |token| Authorized(token, PhantomData))
    }
}

impl<P: Policy> FromRequest for MaybeAuthorized<P> {
    type Error = AuthRejection;
    type Future = Pending<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = find(req);
        let values = authorization_values(req);
        Box::pin(async move {
            guard::authorize_optional::<P>(
                auth.as_ref(),
                values.iter().flatten().map(HeaderValue::as_bytes),
            )
            .await
            .map(|token| MaybeAuthorized(token, PhantomData))
        })
    }
}

impl FromRequest for IdToken {
    type Error = AuthRejection;
    type Future = Pending<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        required::<NoPolicy, _>(req, |token| token)
    }
}

/// The guard first, then the rest: the payload is kept aside until the guard has accepted the
/// request, and only then are the other extractors created over it. The guard's own refusal is
/// the answer; the body is never read for it.
impl<G, R> FromRequest for Guarded<G, R>
where
    G: FromRequest + 'static,
    R: FromRequest + 'static,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let guard = G::from_request(req, &mut Payload::None);
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let guard = guard.await.map_err(Into::into)?;
            let rest = R::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Guarded(guard, rest))
        })
    }
}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.response().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        // `OidcAuth::render` has left out any header actix-web would refuse (which would turn
        // the answer into a 500).
        let rendered = self.response();
        let mut builder = HttpResponse::build(self.status_code());
        if !rendered.content_type.is_empty() {
            builder.content_type(rendered.content_type);
        }
        for (name, value) in &rendered.headers {
            builder.append_header((*name, value.as_str()));
        }
        builder.body(rendered.body.clone())
    }
}
