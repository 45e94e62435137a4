//! Handlers with many parameters besides the token (14 and 14), gathered behind the guard: both
//! frameworks accept the handler. On axum the body extractor stays last.
use actix_web::HttpRequest;
use axum::http::{HeaderMap, Method, Uri};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
#[allow(clippy::too_many_arguments)]
async fn actix_many(
    a: HttpRequest,
    b: HttpRequest,
    c: HttpRequest,
    d: HttpRequest,
    e: HttpRequest,
    f: HttpRequest,
    token: IdToken,
    g: HttpRequest,
    h: HttpRequest,
    i: HttpRequest,
    j: HttpRequest,
    k: HttpRequest,
    l: HttpRequest,
    m: HttpRequest,
    body: actix_web::web::Json<serde_json::Value>,
) -> String {
    let requests = [a, b, c, d, e, f, g, h, i, j, k, l, m];
    format!("{} {} {}", token.sub(), requests.len(), body.0)
}

#[oidc::required]
#[allow(clippy::too_many_arguments)]
async fn axum_many(
    a: Method,
    b: Uri,
    c: HeaderMap,
    d: Method,
    e: Uri,
    f: HeaderMap,
    g: Method,
    h: Uri,
    i: HeaderMap,
    j: Method,
    k: Uri,
    l: HeaderMap,
    m: Method,
    token: IdToken,
    body: String,
) -> String {
    let _ = (a, b, c, d, e, f, g, h, i, j, k, l, m);
    format!("{} {body}", token.sub())
}

fn main() {
    let _ = |auth: OidcAuth| {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(auth))
            .route("/many", actix_web::web::post().to(actix_many))
    };
    let _ = |auth: OidcAuth| -> axum::Router {
        axum::Router::new()
            .route("/many", axum::routing::post(axum_many))
            .with_state(auth)
    };
}
