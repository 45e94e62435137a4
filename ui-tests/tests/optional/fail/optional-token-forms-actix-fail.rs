//! The same on actix-web: a parameter carrying the token in a form other than
//! `Option<IdToken>` would reach the handler without the route's requirements.
use actix_web::{App, HttpResponse, web};
use oidc_auth as oidc;
use oidc_auth::{IdToken, OidcAuth};

#[oidc::optional(scopes = "beta")]
async fn wrapped(token: Option<oidc::Authorized>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}", token.is_some()))
}

#[oidc::optional(claims(groups = "testers"))]
async fn beside(
    token: Option<IdToken>,
    path: web::Path<String>,
    again: Option<oidc::Authorized>,
) -> HttpResponse {
    HttpResponse::Ok().body(format!(
        "{} {} {}",
        token.is_some(),
        path.into_inner(),
        again.is_some()
    ))
}

fn main() {
    let _ = |auth: OidcAuth| {
        App::new()
            .app_data(web::Data::new(auth))
            .route("/wrapped", web::get().to(wrapped))
            .route("/beside/{name}", web::get().to(beside))
    };
}
