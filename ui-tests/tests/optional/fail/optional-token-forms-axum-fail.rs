//! Under `#[oidc::optional]` the token is one parameter of type `Option<IdToken>`. Any other
//! parameter that carries it (in a `Result`, in a guard, nested) would be extracted apart from
//! the route's check, whose guard never rejects: the handler would see a token that need not
//! meet `scopes = "beta"`. Each is a compile error.
use axum::Router;
use axum::routing::get;
use oidc_auth as oidc;
use oidc_auth::{AuthRejection, IdToken, NoPolicy, OidcAuth, Policy};

struct Ops;
impl Policy for Ops {
    const SCOPES: &'static [&'static str] = &["ops"];
}

#[oidc::optional(scopes = "beta")]
async fn banner(token: Result<Option<IdToken>, AuthRejection>) -> String {
    format!("{}", matches!(token, Ok(Some(_))))
}

#[oidc::optional(scopes = "beta")]
async fn wrapped(token: Option<oidc::Authorized>) -> String {
    format!("{}", token.is_some())
}

#[oidc::optional(scopes = "beta")]
async fn guard(token: oidc_auth::MaybeAuthorized<NoPolicy>) -> String {
    format!("{}", token.0.is_some())
}

#[oidc::optional(scopes = "beta")]
async fn beside(token: Option<IdToken>, ops: Option<oidc_auth::Authorized<Ops>>) -> String {
    format!("{} {}", token.is_some(), ops.is_some())
}

fn app(auth: OidcAuth) -> Router {
    Router::new()
        .route("/banner", get(banner))
        .route("/wrapped", get(wrapped))
        .route("/guard", get(guard))
        .route("/beside", get(beside))
        .with_state(auth)
}

fn main() {
    let _ = app;
}
