//! `crate = "..."` names a re-export of `oidc_auth`; the crate is also usable unrenamed.
use axum::Router;
use axum::routing::get;

mod reexport {
    pub use oidc_auth;
}

#[reexport::oidc_auth::required(scopes = "admin", crate = "crate::reexport::oidc_auth")]
async fn reexported(token: reexport::oidc_auth::IdToken) -> String {
    token.sub().to_owned()
}

#[oidc_auth::required(crate = "::oidc_auth", claims(level = 1))]
async fn unrenamed(token: oidc_auth::IdToken) -> String {
    token.sub().to_owned()
}

fn app(auth: oidc_auth::OidcAuth) -> Router {
    Router::new()
        .route("/reexported", get(reexported))
        .route("/unrenamed", get(unrenamed))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
