//! Stacked with actix's route macros, in either order.
use actix_web::{App, HttpResponse, Responder, get, route};
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
#[get("/below")]
async fn below(token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[get("/above")]
#[oidc::required(scopes = "admin")]
async fn above(token: IdToken) -> impl Responder {
    HttpResponse::Ok().body(token.sub().to_owned())
}

#[route("/both", method = "GET", method = "POST")]
#[oidc::required(scopes = ["read", "write"])]
async fn both(token: IdToken) -> HttpResponse {
    HttpResponse::Ok().body(token.sub().to_owned())
}

fn main() {
    let _ = |auth: OidcAuth| {
        App::new()
            .app_data(actix_web::web::Data::new(auth))
            .service(below)
            .service(above)
            .service(both)
    };
}
