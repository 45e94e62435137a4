//! actix-web handlers with `Option<IdToken>`, also under `#[get]`.
use actix_web::{App, HttpResponse, Responder, get, web};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::optional]
async fn feed(token: Option<IdToken>) -> impl Responder {
    HttpResponse::Ok().body(format!("{}", token.is_some()))
}

#[get("/banner")]
#[oidc::optional(scopes = ["beta"])]
async fn banner(mut token: Option<IdToken>) -> HttpResponse {
    let signed_in = token.take().is_some();
    HttpResponse::Ok().body(format!("{signed_in}"))
}

#[oidc::optional(claims(level = 2))]
async fn no_token(path: web::Path<String>) -> String {
    path.into_inner()
}

fn main() {
    let _ = |auth: OidcAuth| {
        App::new()
            .app_data(web::Data::new(auth))
            .route("/feed", web::get().to(feed))
            .route("/no-token/{name}", web::get().to(no_token))
            .service(banner)
    };
}
