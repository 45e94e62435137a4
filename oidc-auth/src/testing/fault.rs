//! The endpoints of the mock provider and the faults each one can be switched into.

use std::time::Duration;

/// An HTTP endpoint served by the [`MockProvider`](super::MockProvider); used to inject faults
/// and read hit counts per endpoint.
///
/// ```no_run
/// use oidc_auth::testing::{Endpoint, Fault, MockProvider};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockProvider::start().await?;
/// provider.set_fault(Endpoint::Jwks, Fault::Status(503));
/// assert_eq!(provider.hits(Endpoint::Jwks), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `GET /.well-known/openid-configuration`.
    Discovery,
    /// `GET /jwks`.
    Jwks,
    /// `GET /authorize`: the authorization endpoint of the code flow.
    Authorize,
    /// `POST /token`: the token endpoint (authorization code, refresh token and device code
    /// grants).
    Token,
    /// `POST /device`: the device authorization endpoint (RFC 8628).
    Device,
    /// `GET /userinfo` (`POST` is answered too).
    Userinfo,
    /// `GET /logout`: the end-session endpoint (RP-initiated logout).
    EndSession,
    /// `POST /revoke`: the revocation endpoint (RFC 7009).
    Revocation,
}

impl Endpoint {
    /// Every endpoint, in the order of [`Endpoint::index`].
    pub(super) const ALL: [Endpoint; 8] = [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Device,
        Endpoint::Userinfo,
        Endpoint::EndSession,
        Endpoint::Revocation,
    ];

    /// Number of endpoints; the length of the per-endpoint fault and hit tables.
    pub(super) const COUNT: usize = Self::ALL.len();

    /// Position in the per-endpoint tables.
    pub(super) fn index(self) -> usize {
        match self {
            Endpoint::Discovery => 0,
            Endpoint::Jwks => 1,
            Endpoint::Authorize => 2,
            Endpoint::Token => 3,
            Endpoint::Device => 4,
            Endpoint::Userinfo => 5,
            Endpoint::EndSession => 6,
            Endpoint::Revocation => 7,
        }
    }

    /// The path the endpoint is served at, relative to the issuer.
    pub(super) fn path(self) -> &'static str {
        match self {
            Endpoint::Discovery => "/.well-known/openid-configuration",
            Endpoint::Jwks => "/jwks",
            Endpoint::Authorize => "/authorize",
            Endpoint::Token => "/token",
            Endpoint::Device => "/device",
            Endpoint::Userinfo => "/userinfo",
            Endpoint::EndSession => "/logout",
            Endpoint::Revocation => "/revoke",
        }
    }
}

/// How an endpoint of the [`MockProvider`](super::MockProvider) misbehaves.
///
/// Set with [`MockProvider::set_fault`](super::MockProvider::set_fault) for one endpoint or
/// [`MockProvider::set_fault_all`](super::MockProvider::set_fault_all) for all of them;
/// [`Fault::None`] restores normal answers.
///
/// ```no_run
/// use std::time::Duration;
/// use oidc_auth::testing::{Endpoint, Fault, MockProvider};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let provider = MockProvider::start().await?;
/// provider.set_fault(Endpoint::Discovery, Fault::Slow(Duration::from_millis(200)));
/// provider.set_fault_all(Fault::None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// The server is unreachable: the TCP connection is closed without any answer.
    ///
    /// When every endpoint is down (as after `set_fault_all(Fault::Down)`) new connections are
    /// closed as soon as they are accepted, and requests on connections that were already open
    /// (a client's keep-alive pool) are dropped unanswered. When only some endpoints are down,
    /// requests for those endpoints are read and then dropped unanswered, closing the
    /// connection. Either way the client sees a connection error, and the request is **not**
    /// counted in [`hits`](super::MockProvider::hits).
    Down,
    /// Answer with this HTTP status and a small JSON error body
    /// (`{"error": "mock_fault", "error_description": ...}`). A number that is not a valid
    /// status code (outside `100..=999`) is answered with 500.
    Status(u16),
    /// Answer with this HTTP status and this JSON body, as a gateway in front of a provider, or
    /// a misbehaving provider, might: an error without a well-formed `error` code, say. A
    /// number that is not a valid status code is answered with 500.
    Json(u16, serde_json::Value),
    /// Answer with this HTTP status and no body, as many servers do: a `401` (sent with
    /// `WWW-Authenticate: Bearer error="invalid_token"`, as RFC 6750 has it), a `404` or a
    /// `503` from a proxy. A number that is not a valid status code is answered with 500.
    Empty(u16),
    /// Answer with this HTTP status, the JSON error body of [`Status`](Self::Status) and this
    /// `Retry-After` header value, as a throttling provider (`429`) or a proxy during
    /// maintenance (`503`) might: seconds (`"120"`) or an HTTP date. A number that is not a
    /// valid status code is answered with 500; a value that cannot be a header is left out.
    RetryAfter(u16, String),
    /// Answer `200 OK` with an HTML body (`Content-Type: text/html`), like a captive portal or a
    /// misconfigured proxy would.
    Garbage,
    /// Answer `200 OK` with `Content-Type: application/json` and only the first half of the real
    /// document, so parsing fails partway through.
    Truncated,
    /// Answer correctly, after this delay.
    Slow(Duration),
    /// Do the work at once, but send the answer only after this delay: a request the provider
    /// carried out (a refresh token rotated, say) whose answer arrives late, or never if the
    /// client gives up first.
    Late(Duration),
    /// Never answer; the client has to time out. The request is held until the provider shuts
    /// down.
    Hang,
}
