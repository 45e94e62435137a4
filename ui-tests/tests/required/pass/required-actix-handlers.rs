//! actix-web handlers: `impl Responder`, `HttpResponse`, `web::Path` and `web::Json`.
use actix_web::{App, HttpResponse, Responder, web};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn responder(token: IdToken) -> impl Responder {
    token.sub().to_owned()
}

#[oidc::required(scopes = "write")]
async fn update(
    path: web::Path<u32>,
    token: IdToken,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {} {}", token.sub(), path.into_inner(), body.0))
}

#[oidc::required]
async fn absent(path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().body(path.into_inner())
}

fn configure(auth: OidcAuth) -> impl Fn(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(auth.clone()))
            .route("/responder", web::get().to(responder))
            .route("/update/{id}", web::post().to(update))
            .route("/absent/{name}", web::get().to(absent));
    }
}

fn main() {
    let _ = |auth: OidcAuth| App::new().configure(configure(auth));
}
