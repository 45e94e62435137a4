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
async fn levelled(path: web::Path<String>, token: Option<IdToken>) -> String {
    format!("{} {}", path.into_inner(), token.is_some())
}

fn main() {
    let _ = |auth: OidcAuth| {
        App::new()
            .app_data(web::Data::new(auth))
            .route("/feed", web::get().to(feed))
            .route("/levelled/{name}", web::get().to(levelled))
            .service(banner)
    };
}
