//! Under `#[oidc::required]` a guard of its own among the other parameters is a real extractor
//! with a policy of its own: `Authorized<P>` adds its requirements, and `Option<Authorized<P>>`
//! or `MaybeAuthorized<P>` tell whether the token also meets `P`. The route's requirements
//! still hold, so these compile.
use axum::Router;
use axum::routing::get;
use oidc_auth as oidc;
use oidc_auth::{Authorized, IdToken, MaybeAuthorized, OidcAuth, Policy};

struct Ops;
impl Policy for Ops {
    const SCOPES: &'static [&'static str] = &["ops"];
}

#[oidc::required(scopes = "admin")]
async fn both(token: IdToken, ops: Authorized<Ops>) -> String {
    format!("{} {}", token.sub(), ops.sub())
}

#[oidc::required(scopes = "admin")]
async fn maybe_ops(token: IdToken, ops: Option<oidc::Authorized<Ops>>) -> String {
    format!("{} {}", token.sub(), ops.is_some())
}

#[oidc::required(scopes = "admin")]
async fn guard_only(ops: MaybeAuthorized<Ops>) -> String {
    format!("{}", ops.0.is_some())
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/both", get(both))
        .route("/maybe-ops", get(maybe_ops))
        .route("/guard-only", get(guard_only))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
