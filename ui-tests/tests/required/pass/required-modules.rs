//! Module-level and `pub` handlers; the same policy, and the same name, in two modules.
#![deny(warnings)]

use axum::Router;
use axum::routing::get;
use oidc_auth as oidc;

pub mod users {
    use super::oidc::{self, IdToken};

    #[oidc::required(scopes = "admin", claims(groups = "admins"))]
    pub async fn show(token: IdToken) -> String {
        token.sub().to_owned()
    }
}

pub mod teams {
    use super::oidc::{self, IdToken};

    #[oidc::required(scopes = "admin", claims(groups = "admins"))]
    pub async fn show(token: IdToken) -> String {
        token.sub().to_owned()
    }

    #[oidc::required(scopes = "admin", claims(groups = "admins"))]
    pub(crate) async fn list() {}
}

pub fn app(auth: oidc::OidcAuth) -> Router {
    Router::new()
        .route("/users", get(users::show))
        .route("/teams", get(teams::show))
        .route("/teams/all", get(teams::list))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
