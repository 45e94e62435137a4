//! The auth endpoints as an actix-web `Scope`, built from [`AuthRoutes`].

use actix_web::dev::HttpServiceFactory;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, PRAGMA,
};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::auth::OidcAuth;
use crate::error::AuthError;
use crate::flow::{
    AuthEndpoint, AuthRouterSpec, AuthRoutes, EndpointResponse, MAX_FORM_BYTES, Mounted,
    check_form, method_not_allowed, unreadable_body,
};
use crate::guard::AuthRejection;

/// A form body, or the JSON error for one actix-web could not read (413 over the limit) or one
/// not sent as a form.
fn form(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<web::Bytes, AuthError> {
    let body = body.map_err(|e| unreadable_body(e.as_response_error().status_code().as_u16()))?;
    let codings = req.headers().get_all(CONTENT_ENCODING);
    let content_type = req.headers().get(CONTENT_TYPE).map(|v| v.as_bytes());
    check_form(codings.map(|v| v.as_bytes()), content_type, &body)?;
    Ok(body)
}

fn respond(auth: &OidcAuth, result: Result<EndpointResponse, AuthError>) -> HttpResponse {
    let answer = match result {
        Ok(answer) => answer,
        Err(error) => return AuthRejection::rendered(auth, error).error_response(),
    };
    let mut builder = match &answer {
        EndpointResponse::Json { status, .. } => {
            HttpResponse::build(StatusCode::from_u16(*status).unwrap_or(StatusCode::OK))
        }
        EndpointResponse::Redirect { .. } => HttpResponse::build(StatusCode::FOUND),
    };
    builder
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"));
    match answer {
        EndpointResponse::Json { body, .. } => builder
            .content_type("application/json")
            .body(body.to_string()),
        EndpointResponse::Redirect { location } => {
            builder.insert_header((LOCATION, location)).finish()
        }
    }
}

/// The auth endpoints of `routes` as a scope (mounted at the prefix) to add to an `App`.
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use oidc_auth::{AuthRoutes, OidcAuth};
///
/// fn app(auth: OidcAuth) -> Result<(), oidc_auth::ConfigError> {
///     let _ = App::new().service(
///         oidc_auth::actix::auth_scope(auth, &AuthRoutes::new().prefix("/api")?).route(
///             "/auth/v2/auth-ports",
///             web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"valid_ports": [8080, 8443]})) }),
///         ),
///     );
///     Ok(())
/// }
/// ```
///
/// Each endpoint path is one resource with a route per method, so a wrong method is 405 with
/// `Allow` and the JSON error body, as with [`auth_config`] and on axum. The 16 KiB body limit
/// of the token and revoke endpoints is set on their resources only, not on routes the
/// application adds to the scope.
///
/// The scope answers every path below its prefix: once the prefix matches, actix-web looks no
/// further than the scope, and a path none of its routes serves is 404. A route the application
/// registers on the `App` after a scope at `/api`, such as `/api/items`, is therefore never
/// reached. Add such routes to the scope, as above, or mount the endpoints with
/// [`auth_config`] or [`auth_services`], which register each endpoint as a resource at its full
/// path and leave the other paths below the prefix to the application. With an empty prefix the
/// scope would hide every other route of the application (and logs a warning): use those two
/// then.
pub fn auth_scope(auth: OidcAuth, routes: &AuthRoutes) -> actix_web::Scope {
    if routes.get_prefix().is_empty() {
        tracing::warn!(
            "an actix-web scope with an empty prefix takes every request, so the application's other routes are not reachable; mount the auth endpoints with `auth_services` or `auth_config` instead"
        );
    }
    let mut scope = web::scope(routes.get_prefix());
    for resource in resources(&auth, routes, "") {
        scope = scope.service(resource);
    }
    scope
}

/// One resource per path, each with the route of every endpoint at that path, `below` put in
/// front of the paths.
fn resources(auth: &OidcAuth, routes: &AuthRoutes, below: &str) -> Vec<actix_web::Resource> {
    auth.mounted_by_path(routes)
        .into_iter()
        .map(|(path, endpoints)| {
            let mut resource = web::resource(format!("{below}{path}"));
            if endpoints.iter().any(|e| {
                matches!(
                    e,
                    Mounted::Endpoint(AuthEndpoint::Token | AuthEndpoint::Revoke)
                )
            }) {
                resource = resource.app_data(web::PayloadConfig::new(MAX_FORM_BYTES));
            }
            let allow = Mounted::allow(&endpoints);
            let refusing = auth.clone();
            resource = resource.default_service(web::to(move || {
                let mut response =
                    AuthRejection::rendered(&refusing, method_not_allowed()).error_response();
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(ALLOW, value);
                }
                std::future::ready(response)
            }));
            for endpoint in endpoints {
                resource = resource.route(endpoint_route(auth, endpoint));
            }
            resource
        })
        .collect()
}

fn endpoint_route(auth: &OidcAuth, mounted: Mounted) -> actix_web::Route {
    let auth = auth.clone();
    let endpoint = match mounted {
        Mounted::Endpoint(endpoint) => endpoint,
        Mounted::NoDevice => {
            return web::post().to(move || {
                let auth = auth.clone();
                async move { respond(&auth, auth.no_device_endpoint()) }
            });
        }
    };
    match endpoint {
        AuthEndpoint::Login => web::get().to(move |req: HttpRequest| {
            let auth = auth.clone();
            async move { respond(&auth, auth.login_endpoint(req.query_string()).await) }
        }),
        AuthEndpoint::Callback => web::get().to(move |req: HttpRequest| {
            let auth = auth.clone();
            async move { respond(&auth, auth.callback_endpoint(req.query_string()).await) }
        }),
        AuthEndpoint::Token => web::post().to(
            move |req: HttpRequest, body: Result<web::Bytes, actix_web::Error>| {
                let auth = auth.clone();
                async move {
                    let authorization = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
                    let answer = async {
                        let body = form(&req, body)?;
                        auth.token_request(&body, authorization).await
                    };
                    respond(&auth, answer.await)
                }
            },
        ),
        AuthEndpoint::Device => web::post().to(move || {
            let auth = auth.clone();
            async move { respond(&auth, auth.device_endpoint().await) }
        }),
        AuthEndpoint::Logout => web::get().to(move |req: HttpRequest| {
            let auth = auth.clone();
            async move { respond(&auth, auth.logout_endpoint(req.query_string()).await) }
        }),
        AuthEndpoint::Userinfo => web::get().to(move |req: HttpRequest| {
            let auth = auth.clone();
            async move {
                let values = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
                respond(&auth, auth.userinfo_endpoint(values).await)
            }
        }),
        AuthEndpoint::Jwks => web::get().to(move || {
            let auth = auth.clone();
            async move { respond(&auth, auth.jwks_endpoint().await) }
        }),
        AuthEndpoint::Revoke => web::post().to(
            move |req: HttpRequest, body: Result<web::Bytes, actix_web::Error>| {
                let auth = auth.clone();
                async move {
                    let answer = async { auth.revoke_endpoint(&form(&req, body)?).await };
                    respond(&auth, answer.await)
                }
            },
        ),
    }
}

/// `auth_scope` for a route spec type, such as one declared with `#[oidc::auth_router]`.
pub fn auth_scope_for<T: AuthRouterSpec>(auth: OidcAuth) -> actix_web::Scope {
    auth_scope(auth, &T::routes())
}

/// The auth endpoints as services for `App::service`: each endpoint path is a resource at its
/// full path (prefix included), so the application's other routes stay reachable whatever the
/// prefix, an empty one included. This is what `scope()` of an `#[oidc::auth_router]` without a
/// prefix returns.
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use oidc_auth::{AuthRoutes, OidcAuth};
///
/// fn app(auth: OidcAuth) {
///     let _ = App::new()
///         .service(oidc_auth::actix::auth_services(auth, &AuthRoutes::new()))
///         .route("/me", web::get().to(HttpResponse::Ok));
/// }
/// ```
pub fn auth_services(auth: OidcAuth, routes: &AuthRoutes) -> impl HttpServiceFactory + use<> {
    resources(&auth, routes, routes.get_prefix())
}

/// The auth endpoints as a `ServiceConfig` function, for `App::configure`: each endpoint is a
/// resource at its full path, as with [`auth_services`], so the application's other routes stay
/// reachable whatever the prefix.
///
/// ```
/// use actix_web::App;
/// use oidc_auth::{AuthRoutes, OidcAuth};
///
/// fn app(auth: OidcAuth) {
///     let _ = App::new().configure(oidc_auth::actix::auth_config(auth, AuthRoutes::new()));
/// }
/// ```
pub fn auth_config(auth: OidcAuth, routes: AuthRoutes) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(auth_services(auth.clone(), &routes));
    }
}
