//! After an error the struct keeps its impls, so its uses add no errors of their own.
use oidc_auth as oidc;
use oidc::{AuthRouterSpec as _, OidcAuth};

#[oidc::auth_router(prefix = "api")]
struct AuthApi;

fn mount(auth: OidcAuth) {
    let _ = AuthApi::routes();
    let _router: axum::Router = AuthApi::router(auth.clone());
    let _app = actix_web::App::new()
        .service(AuthApi::scope(auth.clone()).route("/me", actix_web::web::get().to(|| async { "me" })))
        .configure(AuthApi::configure(auth));
}

fn main() {
    let _ = mount;
}
