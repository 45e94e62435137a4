//! [`AuthError`]: every failure of authentication, its HTTP status, RFC 6750 challenge and JSON
//! body. No web framework types appear here; the adapters translate [`ErrorResponse`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`AuthError`] is; decides the status and the RFC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No bearer token was sent: 401 with a bare `Bearer` challenge.
    MissingToken,
    /// The request is malformed (a broken `Authorization` header): 400 `invalid_request`, with
    /// a `Bearer error="invalid_request"` challenge.
    InvalidRequest,
    /// The token is invalid, expired, or not for this server: 401 `invalid_token`.
    InvalidToken,
    /// A required scope is missing: 403 `insufficient_scope`.
    InsufficientScope,
    /// A claim constraint does not hold: 403 `access_denied`.
    Forbidden,
    /// The identity provider cannot be reached or answered badly: 503, with `Retry-After`.
    Unavailable,
    /// The server is set up wrongly (no `OidcAuth` installed): 500.
    Misconfigured,
    /// An OAuth error of an auth endpoint (RFC 6749 section 5.2, RFC 8628 section 3.5): 400
    /// with the error code at top level, such as `invalid_grant` or `authorization_pending`.
    OAuth,
    /// The identity provider answered something unusable: 502.
    BadGateway,
    /// Client authentication failed at the token endpoint (RFC 6749 section 5.2): 401
    /// `invalid_client` with a `Basic` challenge.
    InvalidClient,
    /// A request body over the endpoint's limit (16 KiB for the token endpoint): 413
    /// `invalid_request`.
    PayloadTooLarge,
    /// A method an auth endpoint does not serve: 405 `invalid_request`, sent with `Allow`.
    MethodNotAllowed,
}

impl ErrorKind {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::MissingToken | ErrorKind::InvalidToken => 401,
            ErrorKind::InvalidRequest => 400,
            ErrorKind::InsufficientScope | ErrorKind::Forbidden => 403,
            ErrorKind::Unavailable => 503,
            ErrorKind::Misconfigured => 500,
            ErrorKind::OAuth => 400,
            ErrorKind::BadGateway => 502,
            ErrorKind::InvalidClient => 401,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::MethodNotAllowed => 405,
        }
    }

    /// The RFC 6749 / 6750 error code, `None` for a missing token.
    pub fn code(self) -> Option<&'static str> {
        match self {
            ErrorKind::MissingToken => None,
            ErrorKind::InvalidRequest => Some("invalid_request"),
            ErrorKind::InvalidToken => Some("invalid_token"),
            ErrorKind::InsufficientScope => Some("insufficient_scope"),
            ErrorKind::Forbidden => Some("access_denied"),
            ErrorKind::Unavailable => Some("temporarily_unavailable"),
            ErrorKind::Misconfigured => Some("server_error"),
            ErrorKind::OAuth => Some("invalid_request"),
            ErrorKind::BadGateway => Some("server_error"),
            ErrorKind::InvalidClient => Some("invalid_client"),
            ErrorKind::PayloadTooLarge => Some("invalid_request"),
            ErrorKind::MethodNotAllowed => Some("invalid_request"),
        }
    }

    fn detail(self) -> &'static str {
        match self {
            ErrorKind::MissingToken => "Not authenticated",
            ErrorKind::InvalidRequest => "Invalid request",
            ErrorKind::InvalidToken => "Invalid token",
            ErrorKind::InsufficientScope => "Insufficient scope",
            ErrorKind::Forbidden => "Insufficient claims",
            ErrorKind::Unavailable => "Identity provider unavailable",
            ErrorKind::Misconfigured => "Authentication is not configured",
            ErrorKind::OAuth => "Authentication request failed",
            ErrorKind::BadGateway => "Identity provider error",
            ErrorKind::InvalidClient => "Client authentication failed",
            ErrorKind::PayloadTooLarge => "Request body too large",
            ErrorKind::MethodNotAllowed => "Method Not Allowed",
        }
    }
}

/// An authentication or authorization failure.
///
/// Its description never contains the token or a claim value; a required scope name (which comes
/// from the route, not the token) may appear in the challenge.
///
/// ```
/// use oidc_auth::{AuthError, ErrorKind};
/// let err = AuthError::new(ErrorKind::InvalidToken, "the token has expired");
/// assert_eq!(err.status(), 401);
/// assert_eq!(
///     err.www_authenticate(None).as_deref(),
///     Some(r#"Bearer error="invalid_token", error_description="the token has expired""#)
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    kind: ErrorKind,
    code: Option<Cow<'static, str>>,
    description: Cow<'static, str>,
    scope: Option<String>,
    retry_after: Option<u64>,
}

impl AuthError {
    /// An error of `kind` with a description for the client.
    pub fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            code: None,
            description: description.into(),
            scope: None,
            retry_after: if kind == ErrorKind::Unavailable {
                Some(30)
            } else {
                None
            },
        }
    }

    /// An OAuth error (400) with the RFC error `code` at top level of the body, such as
    /// `invalid_grant` or `authorization_pending`.
    ///
    /// ```
    /// let err = oidc_auth::AuthError::oauth("slow_down", "polling too fast");
    /// assert_eq!((err.status(), err.code()), (400, Some("slow_down")));
    /// ```
    pub fn oauth(
        code: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut e = Self::new(ErrorKind::OAuth, description);
        e.code = Some(code.into());
        e
    }

    /// The RFC error code of the body (`None` only for a missing token).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref().or(self.kind.code())
    }

    pub(crate) fn missing() -> Self {
        Self::new(ErrorKind::MissingToken, "no bearer token was sent")
    }

    pub(crate) fn invalid(description: &'static str) -> Self {
        Self::new(ErrorKind::InvalidToken, description)
    }

    pub(crate) fn unavailable(description: &'static str) -> Self {
        Self::new(ErrorKind::Unavailable, description)
    }

    /// The same error with another RFC code (such as a 401 `invalid_grant`).
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(Cow::Borrowed(code));
        self
    }

    pub(crate) fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub(crate) fn insufficient_scope(required: &[&str]) -> Self {
        let mut e = Self::new(
            ErrorKind::InsufficientScope,
            "the token lacks a scope this resource requires",
        );
        e.scope = Some(required.join(" "));
        e
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The human-readable description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The scopes the resource requires, for `insufficient_scope`.
    pub fn required_scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Seconds a client should wait before retrying (`Retry-After` in
    /// [`to_response`](Self::to_response)): set on every 503, and on the 400 `slow_down` that
    /// answers a device poll while the provider cannot be asked, which keeps the wait of the 503
    /// it stands for; `None` otherwise.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The `WWW-Authenticate` header value (RFC 6750 section 3), for 401 and 403 answers and
    /// the 400 of a malformed `Authorization` header.
    pub fn www_authenticate(&self, realm: Option<&str>) -> Option<String> {
        if !matches!(self.status(), 401 | 403) && self.kind != ErrorKind::InvalidRequest {
            return None;
        }
        if self.kind == ErrorKind::InvalidClient {
            return Some(match realm {
                Some(realm) => format!("Basic realm=\"{}\"", quote_safe(realm)),
                None => "Basic".to_owned(),
            });
        }
        let mut params = Vec::new();
        if let Some(realm) = realm {
            params.push(format!("realm=\"{}\"", quote_safe(realm)));
        }
        if let Some(code) = self.code() {
            params.push(format!("error=\"{}\"", quote_safe(code)));
            params.push(format!(
                "error_description=\"{}\"",
                quote_safe(&self.description)
            ));
        }
        if let Some(scope) = &self.scope {
            params.push(format!("scope=\"{}\"", quote_safe(scope)));
        }
        Some(if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        })
    }

    /// The JSON body: `{"detail", "error", "error_description"}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.kind.detail().to_owned(),
            error: self.code().unwrap_or("invalid_token").to_owned(),
            error_description: self.description.to_string(),
        }
    }

    /// The default rendering of this error as a framework-neutral response. It carries
    /// `Cache-Control: no-store` and `Pragma: no-cache`, as the endpoints' other answers do
    /// (RFC 6749 section 5.2).
    pub fn to_response(&self, realm: Option<&str>) -> ErrorResponse {
        let mut headers = Vec::new();
        if let Some(challenge) = self.www_authenticate(realm) {
            headers.push(("www-authenticate", challenge));
        }
        if let Some(secs) = self.retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        headers.push(("cache-control", "no-store".to_owned()));
        headers.push(("pragma", "no-cache".to_owned()));
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        ErrorResponse {
            status: self.status(),
            headers,
            content_type: "application/json",
            body,
        }
    }
}

/// Whether `value` can go into a quoted-string of a header as it is: printable ASCII without
/// quotes or backslashes.
pub(crate) fn is_quote_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Keeps a value usable inside a quoted-string of a header: drops quotes, backslashes and
/// control characters rather than escaping them.
fn quote_safe(value: &str) -> Cow<'_, str> {
    if is_quote_safe(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(
            value
                .chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .collect(),
        )
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.detail(), self.description)
    }
}

impl std::error::Error for AuthError {}

/// The JSON body of an error answer; `detail` keeps py-oidc-auth compatibility, `error` and
/// `error_description` follow RFC 6749 / 6750.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Short human-readable summary.
    pub detail: String,
    /// The RFC error code.
    pub error: String,
    /// Longer description.
    pub error_description: String,
}

/// A rendered error answer, independent of any web framework.
///
/// ```
/// use oidc_auth::{AuthError, ErrorKind};
/// let response = AuthError::new(ErrorKind::Unavailable, "down").to_response(None);
/// assert_eq!(response.status, 503);
/// assert!(response.headers.iter().any(|(name, _)| *name == "retry-after"));
/// assert!(response.headers.contains(&("pragma", "no-cache".to_owned())));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(&'static str, String)>,
    /// Value of `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl ErrorResponse {
    /// Leaves out every header an HTTP response cannot carry, as a custom renderer may return:
    /// a name that is not an RFC 9110 token, or a value with a control character such as a line
    /// break. An unusable `content_type` becomes empty, which the adapters do not send. Returns
    /// the names of the headers left out, so that both frameworks answer with the same status
    /// and the remaining headers instead of one of them failing with a 500.
    pub(crate) fn drop_invalid_headers(&mut self) -> Vec<&'static str> {
        let mut dropped = Vec::new();
        self.headers.retain(|(name, value)| {
            let keep = is_header_name(name) && is_header_value(value);
            if !keep {
                dropped.push(*name);
            }
            keep
        });
        if !is_header_value(self.content_type) {
            dropped.push("content-type");
            self.content_type = "";
        }
        dropped
    }
}

/// An RFC 9110 `token`, as a header name must be.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value both frameworks send: no control character but horizontal tab.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Replaces the default rendering of errors, for applications with their own error format.
///
/// A header the renderer returns that no HTTP response can carry (a name that is not a token,
/// a value with a line break or another control character) is left out, with a warning logged
/// once per [`OidcAuth`](crate::OidcAuth); the status and the other headers are sent as they
/// are, on both frameworks.
///
/// ```
/// use oidc_auth::{AuthError, ErrorRenderer, ErrorResponse};
/// let renderer: ErrorRenderer = std::sync::Arc::new(|err: &AuthError| ErrorResponse {
///     status: err.status(),
///     headers: Vec::new(),
///     content_type: "text/plain",
///     body: err.description().as_bytes().to_vec(),
/// });
/// ```
pub type ErrorRenderer = Arc<dyn Fn(&AuthError) -> ErrorResponse + Send + Sync>;
