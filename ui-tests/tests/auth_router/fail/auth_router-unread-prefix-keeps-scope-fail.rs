//! A prefix that could not be read still gives the methods of a router with a prefix:
//! `scope` returns a `Scope`, to which routes can be added.
use oidc_auth as oidc;
use oidc::OidcAuth;

#[oidc::auth_router(prefix = 5)]
struct AuthApi;

fn mount(auth: OidcAuth) {
    let _app = actix_web::App::new()
        .service(AuthApi::scope(auth).route("/me", actix_web::web::get().to(|| async { "me" })));
}

fn main() {
    let _ = mount;
}
