//! Declared scopes in `required` and `optional`: alone, in a list, mixed with strings, and by a
//! path through a module.
use axum::Router;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

mod scopes {
    #[derive(oidc_auth::Scopes)]
    pub enum AppScope {
        Admin,
        #[scope("reports:read")]
        Reports,
    }
}

use scopes::AppScope;

#[oidc::required(scopes = AppScope::Admin)]
async fn alone(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = [AppScope::Admin, crate::scopes::AppScope::Reports])]
async fn list(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = ["openid", AppScope::Reports])]
async fn mixed() {}

#[oidc::optional(scopes = [AppScope::Reports])]
async fn optional(token: Option<IdToken>) -> String {
    format!("{}", token.is_some())
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/alone", get(alone))
        .route("/list", get(list))
        .route("/mixed", get(mixed))
        .route("/optional", get(optional))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
