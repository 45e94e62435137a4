//! Claim constraints: ident and string keys, dotted paths, strings, booleans, integers, lists.
use axum::Router;
use axum::routing::get;
use oidc::{IdToken, OidcAuth};
use oidc_auth as oidc;

#[oidc::required(claims(groups = "admins"))]
async fn ident_key(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(claims(
    "realm_access.roles" = ["ops", "sre"],
    "https://example.com/tenant" = "acme",
    email_verified = true,
    level = 3,
    ids = [1, 2, -3],
    flags = [true, false],
))]
async fn many(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::required(scopes = "admin", claims(groups = ["admins", "ops"]))]
async fn with_scopes() {}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/ident", get(ident_key))
        .route("/many", get(many))
        .route("/scoped", get(with_scopes))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
