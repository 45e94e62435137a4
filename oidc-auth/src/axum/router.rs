//! The auth endpoints as an axum `Router`, built from [`AuthRoutes`].

use std::future::{Ready, ready};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery};
use axum::http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, PRAGMA,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::auth::OidcAuth;
use crate::error::AuthError;
use crate::flow::{
    AuthEndpoint, AuthRouterSpec, AuthRoutes, EndpointResponse, MAX_FORM_BYTES, Mounted,
    check_form, method_not_allowed, unreadable_body,
};
use crate::guard::AuthRejection;

/// A form body, or the JSON error for one axum could not read (413 over the limit) or one not
/// sent as a form.
fn form(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, AuthError> {
    let body = body.map_err(|e| unreadable_body(e.status().as_u16()))?;
    let codings = headers.get_all(CONTENT_ENCODING).iter();
    let content_type = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    check_form(codings.map(HeaderValue::as_bytes), content_type, &body)?;
    Ok(body)
}

/// The handler of a method a path does not serve: 405 with the methods it does serve and the
/// JSON error body.
fn refuse(
    auth: &OidcAuth,
    allow: String,
) -> impl Fn() -> Ready<Response> + Clone + Send + Sync + 'static {
    let auth = auth.clone();
    move || {
        let mut response = AuthRejection::rendered(&auth, method_not_allowed()).into_response();
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(ALLOW, value);
        }
        ready(response)
    }
}

fn respond(auth: &OidcAuth, result: Result<EndpointResponse, AuthError>) -> Response {
    let answer = match result {
        Ok(answer) => answer,
        Err(error) => return AuthRejection::rendered(auth, error).into_response(),
    };
    let mut response = match answer {
        EndpointResponse::Json { status, body } => {
            let mut response = Response::new(Body::from(body.to_string()));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        EndpointResponse::Redirect { location } => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            match HeaderValue::from_str(&location) {
                Ok(value) => {
                    response.headers_mut().insert(LOCATION, value);
                }
                Err(_) => *response.status_mut() = StatusCode::BAD_GATEWAY,
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The auth endpoints of `routes` as a router to merge into an application of any state.
///
/// ```
/// use axum::{Json, Router, routing::get};
/// use oidc_auth::{AuthRoutes, OidcAuth};
///
/// fn app(auth: OidcAuth) -> Result<Router, oidc_auth::ConfigError> {
///     Ok(oidc_auth::axum::auth_router(auth, &AuthRoutes::new().prefix("/api")?)
///         .route("/api/auth/v2/auth-ports", get(|| async { Json(serde_json::json!({"valid_ports": [8080, 8443]})) })))
/// }
/// ```
///
/// Any other method than an endpoint's is 405 with `Allow` and the JSON error body, HEAD on a
/// GET endpoint included:
/// axum's `get` also runs the handler for HEAD and drops the body, so a HEAD on the callback
/// would exchange the code and spend its single-use state, and a HEAD on logout or userinfo
/// would do their work, all for an answer nobody reads.
pub fn auth_router<S>(auth: OidcAuth, routes: &AuthRoutes) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for (path, endpoints) in auth.mounted_by_path(routes) {
        let allow = Mounted::allow(&endpoints);
        let serves_get = endpoints.iter().any(|e| e.method() == "GET");
        let mut method = MethodRouter::new().fallback(refuse(&auth, allow.clone()));
        for endpoint in endpoints {
            method = method.merge(endpoint_method(&auth, endpoint));
        }
        if serves_get {
            method = method.head(refuse(&auth, allow));
        }
        router = router.route(&format!("{}{}", routes.get_prefix(), path), method);
    }
    router
}

/// The route of one endpoint, for its method only.
fn endpoint_method<S>(auth: &OidcAuth, mounted: Mounted) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let auth = auth.clone();
    let endpoint = match mounted {
        Mounted::Endpoint(endpoint) => endpoint,
        Mounted::NoDevice => {
            return post(move || async move { respond(&auth, auth.no_device_endpoint()) });
        }
    };
    match endpoint {
        AuthEndpoint::Login => get(move |RawQuery(q): RawQuery| async move {
            respond(&auth, auth.login_endpoint(q.as_deref().unwrap_or("")).await)
        }),
        AuthEndpoint::Callback => get(move |RawQuery(q): RawQuery| async move {
            respond(
                &auth,
                auth.callback_endpoint(q.as_deref().unwrap_or("")).await,
            )
        }),
        AuthEndpoint::Token => post(
            move |headers: HeaderMap, body: Result<Bytes, BytesRejection>| async move {
                let authorization = headers
                    .get_all(AUTHORIZATION)
                    .iter()
                    .map(HeaderValue::as_bytes);
                let answer = async {
                    let body = form(&headers, body)?;
                    auth.token_request(&body, authorization).await
                };
                respond(&auth, answer.await)
            },
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        AuthEndpoint::Device => {
            post(move || async move { respond(&auth, auth.device_endpoint().await) })
        }
        AuthEndpoint::Logout => get(move |RawQuery(q): RawQuery| async move {
            respond(
                &auth,
                auth.logout_endpoint(q.as_deref().unwrap_or("")).await,
            )
        }),
        AuthEndpoint::Userinfo => get(move |headers: HeaderMap| async move {
            let values = headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes);
            respond(&auth, auth.userinfo_endpoint(values).await)
        }),
        AuthEndpoint::Jwks => {
            get(move || async move { respond(&auth, auth.jwks_endpoint().await) })
        }
        AuthEndpoint::Revoke => post(
            move |headers: HeaderMap, body: Result<Bytes, BytesRejection>| async move {
                let answer = async { auth.revoke_endpoint(&form(&headers, body)?).await };
                respond(&auth, answer.await)
            },
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
    }
}

/// `auth_router` for a route spec type, such as one declared with `#[oidc::auth_router]`.
pub fn auth_router_for<T: AuthRouterSpec, S>(auth: OidcAuth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    auth_router(auth, &T::routes())
}
