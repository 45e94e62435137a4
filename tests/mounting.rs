//! The auth endpoints mounted each way the frameworks offer. `AuthRoutes` refuses what a router
//! could not mount.

use oidc_auth::{AuthEndpoint, AuthRoutes};

/// `AuthRoutes` refuses, with a `ConfigError` naming the method, every prefix or path the
/// routers would refuse (axum panicked when mounting them) or read differently, and two
/// endpoints of one method on one path.
#[test]
fn auth_routes_refuse_what_a_router_cannot_mount() {
    for prefix in [
        "api",
        "/api/",
        "/",
        "/a//b",
        "/:tenant",
        "/{tenant}",
        "/*rest",
        "/a b",
        "/ü",
        "/a%20b",
        "/a?b",
    ] {
        let err = AuthRoutes::new().prefix(prefix).expect_err(prefix);
        assert_eq!(err.option(), "prefix", "{prefix}: {err}");
    }
    for path in [
        "signin",
        "",
        "/",
        "/auth/",
        "/auth//login",
        "/auth/:x",
        "/auth/{x}",
        "/anmelden/ü",
        "/a#b",
    ] {
        let err = AuthRoutes::new()
            .path(AuthEndpoint::Login, path)
            .expect_err(path);
        assert_eq!(err.option(), "path", "{path}: {err}");
    }
    let clash = AuthRoutes::new()
        .path(AuthEndpoint::Login, "/auth/v2/callback")
        .expect_err("two GET endpoints on one path");
    assert!(clash.message().contains("Callback"), "{clash}");
    let clash = AuthRoutes::new()
        .path(AuthEndpoint::Revoke, "/auth/v2/token")
        .expect_err("two POST endpoints on one path");
    assert!(clash.message().contains("Token"), "{clash}");
    // What is accepted mounts: letters, digits, RFC 3986 sub-delims (but `*`), `@` and `-._~`.
    let fine = AuthRoutes::new()
        .prefix("/api-v1.2_~")
        .and_then(|r| r.path(AuthEndpoint::Login, "/sign-in@x!$&'()+,;="))
        .and_then(|r| {
            r.disable(AuthEndpoint::Callback)
                .path(AuthEndpoint::Login, "/auth/v2/callback")
        })
        .expect("valid routes");
    assert_eq!(
        fine.full_path(AuthEndpoint::Login).as_deref(),
        Some("/api-v1.2_~/auth/v2/callback")
    );
}
