//! Where the auth endpoints are mounted: a prefix and one path per endpoint, each overridable
//! or disabled. `#[oidc::auth_router]` generates one of these; the framework modules turn it
//! into an axum `Router` or an actix-web `Scope`.

/// One of the built-in auth endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthEndpoint {
    /// `GET /auth/v2/login`: redirect to the provider (authorization code + PKCE).
    Login,
    /// `GET /auth/v2/callback`: code exchange when the provider redirects to the server.
    Callback,
    /// `POST /auth/v2/token`: code, refresh and device-code grants.
    Token,
    /// `POST /auth/v2/device`: start of the device flow.
    Device,
    /// `GET /auth/v2/logout`: redirect to the provider's end-session endpoint.
    Logout,
    /// `GET /auth/v2/userinfo`: the normalised user of the bearer token.
    Userinfo,
    /// `GET /auth/v2/.well-known/jwks.json`: the broker's public keys. Mounted only in broker
    /// mode.
    Jwks,
    /// `POST /auth/v2/revoke`: revokes a refresh token (RFC 7009); in broker mode it ends the
    /// broker session, otherwise the provider revokes it.
    Revoke,
}

impl AuthEndpoint {
    /// Every endpoint.
    pub const ALL: [AuthEndpoint; 8] = [
        AuthEndpoint::Login,
        AuthEndpoint::Callback,
        AuthEndpoint::Token,
        AuthEndpoint::Device,
        AuthEndpoint::Logout,
        AuthEndpoint::Userinfo,
        AuthEndpoint::Jwks,
        AuthEndpoint::Revoke,
    ];

    /// The default path, below the prefix.
    pub fn default_path(self) -> &'static str {
        match self {
            AuthEndpoint::Login => "/auth/v2/login",
            AuthEndpoint::Callback => "/auth/v2/callback",
            AuthEndpoint::Token => "/auth/v2/token",
            AuthEndpoint::Device => "/auth/v2/device",
            AuthEndpoint::Logout => "/auth/v2/logout",
            AuthEndpoint::Userinfo => "/auth/v2/userinfo",
            AuthEndpoint::Jwks => "/auth/v2/.well-known/jwks.json",
            AuthEndpoint::Revoke => "/auth/v2/revoke",
        }
    }

    /// The HTTP method the endpoint answers.
    pub fn method(self) -> &'static str {
        match self {
            AuthEndpoint::Token | AuthEndpoint::Device | AuthEndpoint::Revoke => "POST",
            _ => "GET",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The mount points of the auth endpoints.
///
/// ```
/// use oidc_auth::{AuthEndpoint, AuthRoutes};
/// let routes = AuthRoutes::new()
///     .prefix("/api")
///     .path(AuthEndpoint::Login, "/auth/v2/signin")
///     .disable(AuthEndpoint::Device);
/// assert_eq!(routes.full_path(AuthEndpoint::Login).as_deref(), Some("/api/auth/v2/signin"));
/// assert_eq!(routes.full_path(AuthEndpoint::Device), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct AuthRoutes {
    prefix: String,
    paths: [Option<String>; 8],
}

impl Default for AuthRoutes {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthRoutes {
    /// Every endpoint at its default path, no prefix.
    pub fn new() -> Self {
        Self {
            prefix: String::new(),
            paths: AuthEndpoint::ALL.map(|e| Some(e.default_path().to_owned())),
        }
    }

    /// Mounts every endpoint below `prefix` (such as `/api`; empty for none).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Serves `endpoint` at `path` (below the prefix).
    pub fn path(mut self, endpoint: AuthEndpoint, path: impl Into<String>) -> Self {
        self.paths[endpoint.index()] = Some(path.into());
        self
    }

    /// Does not serve `endpoint` at all.
    pub fn disable(mut self, endpoint: AuthEndpoint) -> Self {
        self.paths[endpoint.index()] = None;
        self
    }

    /// The prefix.
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// The path of `endpoint` below the prefix, `None` when disabled.
    pub fn get_path(&self, endpoint: AuthEndpoint) -> Option<&str> {
        self.paths[endpoint.index()].as_deref()
    }

    /// Prefix and path of `endpoint`, `None` when disabled.
    pub fn full_path(&self, endpoint: AuthEndpoint) -> Option<String> {
        self.get_path(endpoint)
            .map(|p| format!("{}{}", self.prefix, p))
    }

    /// The enabled endpoints with their paths below the prefix.
    pub fn enabled(&self) -> impl Iterator<Item = (AuthEndpoint, &str)> {
        AuthEndpoint::ALL
            .into_iter()
            .filter_map(|e| self.get_path(e).map(|p| (e, p)))
    }
}

impl crate::auth::OidcAuth {
    /// The endpoints of `routes` this handle serves, with their paths below the prefix: every
    /// enabled one, except the JWKS outside broker mode. The framework adapters mount these.
    #[cfg(any(feature = "axum", feature = "actix-web"))]
    pub(crate) fn mounted<'r>(
        &self,
        routes: &'r AuthRoutes,
    ) -> impl Iterator<Item = (AuthEndpoint, &'r str)> {
        let broker = self.config().broker_mode();
        routes
            .enabled()
            .filter(move |(endpoint, _)| broker || *endpoint != AuthEndpoint::Jwks)
    }
}

/// A type describing where the auth endpoints are mounted; `#[oidc::auth_router]` implements it.
pub trait AuthRouterSpec {
    /// The routes.
    fn routes() -> AuthRoutes;
}
