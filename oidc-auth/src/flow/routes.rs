//! Where the auth endpoints are mounted: a prefix and one path per endpoint, each overridable
//! or disabled. `#[oidc::auth_router]` generates one of these; the framework modules turn it
//! into an axum `Router` or an actix-web `Scope`.

use crate::config::ConfigError;

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

/// Why `path` cannot be mounted as it is, if it cannot. The same rules as the checks of
/// `#[oidc::auth_router]`, which cannot share this code (a proc-macro crate is built before this
/// one).
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "must start with `/`: write `/{}`",
            path.trim_start_matches('/')
        ));
    }
    if path == "/" || path.ends_with('/') {
        return Err("must not end with `/`".to_owned());
    }
    if path.contains("//") {
        return Err("has an empty segment (`//`)".to_owned());
    }
    // Clients resolve dot segments before they send a request (RFC 3986 section 5.2.4).
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(
            "has a `.` or `..` segment, which clients resolve before sending, so no request could reach it"
                .to_owned(),
        );
    }
    // axum panics at mount on `/:x` and `/*x` and reads `{x}` as a capture; so does actix-web.
    if let Some(c) = path.chars().find(|c| matches!(c, ':' | '*' | '{' | '}')) {
        return Err(format!(
            "contains `{c}`, which the routers read as a path parameter or wildcard; the auth endpoints take fixed paths"
        ));
    }
    // Anything else outside RFC 3986 `pchar` (unreserved, sub-delims, `:` and `@`) needs
    // percent-encoding, and then axum matches the encoded form and actix-web the decoded one.
    if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        return Err(format!(
            "contains `{}`; use only letters, digits and `-._~!$&'()+,;=@` besides `/`",
            c.escape_debug()
        ));
    }
    Ok(())
}

/// A character a fixed route path may hold as it is.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@/".contains(c)
}

/// The mount points of the auth endpoints.
///
/// ```
/// use oidc_auth::{AuthEndpoint, AuthRoutes};
/// let routes = AuthRoutes::new()
///     .prefix("/api")?
///     .path(AuthEndpoint::Login, "/auth/v2/signin")?
///     .disable(AuthEndpoint::Device);
/// assert_eq!(routes.full_path(AuthEndpoint::Login).as_deref(), Some("/api/auth/v2/signin"));
/// assert_eq!(routes.full_path(AuthEndpoint::Device), None);
/// # Ok::<(), oidc_auth::ConfigError>(())
/// ```
///
/// Every value of this type can be mounted: [`prefix`](Self::prefix) and [`path`](Self::path)
/// refuse what the routers would reject or read differently, the checks
/// `#[oidc::auth_router]` makes at compile time. A prefix is empty or a path like `/api`; an
/// endpoint path is like `/auth/v2/login`. Both start with `/`, do not end with it, have no
/// empty, `.` or `..` segment (clients resolve those before sending), and use only letters,
/// digits and `-._~!$&'()+,;=@` besides `/`: `:`, `*`, `{` and `}` would be read as path
/// parameters or wildcards, and characters that need percent-encoding are matched encoded by
/// axum and decoded by actix-web. Two endpoints of the same method may not share a path; a GET
/// and a POST endpoint may.
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
    ///
    /// A prefix that is not a plain path is a [`ConfigError`] for the option `prefix`:
    ///
    /// ```
    /// use oidc_auth::AuthRoutes;
    /// let err = AuthRoutes::new().prefix("api").unwrap_err();
    /// assert_eq!(err.option(), "prefix");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        let prefix = prefix.into();
        if !prefix.is_empty() {
            check_path(&prefix).map_err(|problem| {
                ConfigError::new("prefix", format!("the prefix `{prefix}` {problem}"))
            })?;
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Serves `endpoint` at `path` (below the prefix).
    ///
    /// A path that is not a plain path, or that another endpoint of the same method already
    /// takes, is a [`ConfigError`] for the option `path`. To swap the paths of two endpoints,
    /// disable one of them first.
    ///
    /// ```
    /// use oidc_auth::{AuthEndpoint, AuthRoutes};
    /// let err = AuthRoutes::new().path(AuthEndpoint::Login, "signin").unwrap_err();
    /// assert_eq!(err.option(), "path");
    /// // Login and Callback are both GET endpoints.
    /// assert!(AuthRoutes::new().path(AuthEndpoint::Login, "/auth/v2/callback").is_err());
    /// ```
    pub fn path(
        mut self,
        endpoint: AuthEndpoint,
        path: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        check_path(&path).map_err(|problem| {
            ConfigError::new(
                "path",
                format!("the path `{path}` of {endpoint:?} {problem}"),
            )
        })?;
        if let Some((other, _)) = self.enabled().find(|(other, at)| {
            *other != endpoint && other.method() == endpoint.method() && *at == path
        }) {
            return Err(ConfigError::new(
                "path",
                format!(
                    "{endpoint:?} and {other:?} would both answer {} `{path}`; give one of them another path, or disable it first",
                    endpoint.method()
                ),
            ));
        }
        self.paths[endpoint.index()] = Some(path);
        Ok(self)
    }

    /// Routes the `#[oidc::auth_router]` macro has already checked, with the same rules.
    pub(crate) fn from_checked(prefix: &str, settings: &[(AuthEndpoint, Option<&str>)]) -> Self {
        let mut routes = Self::new();
        routes.prefix = prefix.to_owned();
        for (endpoint, path) in settings {
            routes.paths[endpoint.index()] = path.map(str::to_owned);
        }
        routes
    }

    /// Does not serve `endpoint`.
    ///
    /// A switched-off device route still answers `POST` at its default path
    /// (`/auth/v2/device` below the prefix) with 503 `temporarily_unavailable`, as when the
    /// provider has no device flow: that answer is what makes py-oidc-auth-client, which tries
    /// the device flow first, sign in with the browser instead, where a 404 would end its
    /// login. Nothing is mounted there when another auth endpoint answering `POST` has that
    /// path.
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

    /// [`mounted`](Self::mounted), grouped by path (in the order the paths first appear): a
    /// GET and a POST endpoint may share one, and each framework then needs one resource for
    /// both, so that a third method is 405 and not 404. A switched-off device route adds
    /// [`Mounted::NoDevice`] at its default path (see [`AuthRoutes::disable`]).
    #[cfg(any(feature = "axum", feature = "actix-web"))]
    pub(crate) fn mounted_by_path<'r>(
        &self,
        routes: &'r AuthRoutes,
    ) -> Vec<(&'r str, Vec<Mounted>)> {
        let mut out: Vec<(&'r str, Vec<Mounted>)> = Vec::new();
        let mut add =
            |path: &'r str, mounted: Mounted| match out.iter_mut().find(|(at, _)| *at == path) {
                Some((_, here)) => here.push(mounted),
                None => out.push((path, vec![mounted])),
            };
        for (endpoint, path) in self.mounted(routes) {
            add(path, Mounted::Endpoint(endpoint));
        }
        let device = AuthEndpoint::Device.default_path();
        if routes.get_path(AuthEndpoint::Device).is_none()
            && !routes
                .enabled()
                .any(|(e, path)| path == device && e.method() == "POST")
        {
            add(device, Mounted::NoDevice);
        }
        out
    }
}

/// What a framework adapter mounts at a path.
#[cfg(any(feature = "axum", feature = "actix-web"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mounted {
    /// An auth endpoint.
    Endpoint(AuthEndpoint),
    /// The answer of a switched-off device route: 503, as without a device flow at the
    /// provider ([`OidcAuth::no_device_endpoint`](crate::OidcAuth::no_device_endpoint)).
    NoDevice,
}

#[cfg(any(feature = "axum", feature = "actix-web"))]
impl Mounted {
    /// The HTTP method it answers.
    pub(crate) fn method(self) -> &'static str {
        match self {
            Mounted::Endpoint(endpoint) => endpoint.method(),
            Mounted::NoDevice => AuthEndpoint::Device.method(),
        }
    }

    /// The `Allow` header of a path where `mounted` are: the methods they answer.
    pub(crate) fn allow(mounted: &[Mounted]) -> String {
        mounted
            .iter()
            .map(|m| m.method())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A type describing where the auth endpoints are mounted; `#[oidc::auth_router]` implements it.
pub trait AuthRouterSpec {
    /// The routes.
    fn routes() -> AuthRoutes;
}
