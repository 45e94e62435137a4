//! Bounded HTTP fetches from the identity provider: timeouts, size limits, error mapping.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use url::Url;

use crate::config::ConfigError;

/// Grant, device, revocation and userinfo requests to the provider under way at once at most:
/// each comes from a client's request, and a flood of those must not become a flood at the
/// provider or exhaust this server's sockets. Discovery and key fetches are single flight and
/// do not count.
pub(crate) const MAX_OUTBOUND: usize = 64;
/// How long a request waits for one of those places before it answers 503.
const OUTBOUND_WAIT: Duration = Duration::from_secs(1);

/// Why a fetch from the provider failed. Never contains a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request to the identity provider timed out")]
    Timeout,
    #[error("identity provider unreachable")]
    Connect,
    /// The request could not be built from what the provider gave (an access token with a
    /// line break, to send as a bearer header): the provider's fault, and asking again changes
    /// nothing.
    #[error("the request to the identity provider could not be built")]
    Unsendable,
    #[error("identity provider answered HTTP {0}")]
    Status(u16),
    #[error("identity provider response larger than {0} bytes")]
    TooLarge(usize),
    #[error("identity provider response is not valid JSON")]
    NotJson,
    #[error("too many requests to the identity provider are under way")]
    Busy,
    #[error("the discovery document names no usable jwks_uri")]
    NoJwksUri,
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else if e.is_builder() {
            FetchError::Unsendable
        } else {
            FetchError::Connect
        }
    }
}

/// The `reqwest` client for the provider and trusted peers: the configured timeouts, no
/// redirects. It is built with the configuration, so that one that cannot be built (its TLS
/// set-up failed, for one) is a [`ConfigError`], never replaced by a default client, which
/// would follow redirects and wait without a timeout.
#[derive(Clone)]
pub(crate) struct ProviderClient(reqwest::Client);

impl ProviderClient {
    pub(crate) fn new(connect_timeout: Duration, timeout: Duration) -> Result<Self, ConfigError> {
        Self::build(
            reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                // A token must never drive a request elsewhere; redirects are not followed.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("oidc-auth/", env!("CARGO_PKG_VERSION"))),
        )
    }

    fn build(builder: reqwest::ClientBuilder) -> Result<Self, ConfigError> {
        builder.build().map(Self).map_err(|e| {
            ConfigError::new(
                "http_client",
                format!("the HTTP client for the identity provider cannot be built: {e}"),
            )
        })
    }
}

/// Not the client's own `Debug`, which shows proxies read from the environment, credentials
/// included.
impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderClient")
    }
}

/// The HTTP client used for every call to the provider.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    /// Places for requests made on behalf of a client ([`MAX_OUTBOUND`]).
    outbound: Arc<Semaphore>,
}

impl HttpClient {
    pub(crate) fn new(client: &ProviderClient) -> Self {
        Self {
            client: client.0.clone(),
            outbound: Arc::new(Semaphore::new(MAX_OUTBOUND)),
        }
    }

    /// GETs `url` and parses the JSON body, reading at most `max_bytes`.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        max_bytes: usize,
    ) -> Result<T, FetchError> {
        let response = self
            .client
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let body = read_bounded(response, max_bytes).await?;
        serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)
    }

    /// Sends `request` and returns the status with the JSON body (error answers included),
    /// reading at most `max_bytes`. A non-JSON error answer is reported as its status.
    pub(crate) async fn send_json(
        &self,
        request: reqwest::RequestBuilder,
        max_bytes: usize,
    ) -> Result<(u16, serde_json::Value), FetchError> {
        let Answer { status, body, .. } = self.send(request, max_bytes).await?;
        let value = serde_json::from_slice(&body).map_err(|_| {
            if (200..300).contains(&status) {
                FetchError::NotJson
            } else {
                FetchError::Status(status)
            }
        })?;
        Ok((status, value))
    }

    /// Sends `request` and returns the answer with its raw body, reading at most `max_bytes`:
    /// for answers that may have no content, such as a revocation's. At most
    /// [`MAX_OUTBOUND`] are under way at once; past that, [`FetchError::Busy`] after a short
    /// wait.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        max_bytes: usize,
    ) -> Result<Answer, FetchError> {
        let _place = match tokio::time::timeout(OUTBOUND_WAIT, self.outbound.acquire()).await {
            Ok(Ok(place)) => place,
            _ => return Err(FetchError::Busy),
        };
        let response = request.header("accept", "application/json").send().await?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        Ok(Answer {
            status,
            body: read_bounded(response, max_bytes).await?,
            retry_after,
        })
    }

    /// A POST request to `url`, for [`send_json`](Self::send_json).
    pub(crate) fn post(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client.post(url.clone())
    }

    /// A GET request to `url`, for [`send_json`](Self::send_json).
    pub(crate) fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client.get(url.clone())
    }
}

/// A provider's answer to [`HttpClient::send`].
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// At most the bytes asked for.
    pub(crate) body: Vec<u8>,
    /// The answer's `Retry-After` in seconds from now, when it has a readable one.
    pub(crate) retry_after: Option<u64>,
}

/// A `Retry-After` header (RFC 9110 section 10.2.3) in seconds from `now`: delta-seconds, or an
/// HTTP date (0 once it has passed). `None` when there is none or it is neither.
fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<u64> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a long time".
        return Some(value.parse().unwrap_or(u64::MAX));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map_or(0, |wait| {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    }))
}

async fn read_bounded(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(FetchError::TooLarge(max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max_bytes {
            return Err(FetchError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that failed to build was silently replaced by `reqwest::Client::default()`,
    /// which follows redirects and has no timeouts; the failure is now a configuration error.
    #[test]
    fn a_client_that_cannot_be_built_is_a_configuration_error() {
        let broken = reqwest::Client::builder().user_agent("oidc-auth\n");
        match ProviderClient::build(broken) {
            Ok(_) => panic!("a client that cannot be built was replaced"),
            Err(e) => assert_eq!(e.option(), "http_client", "{}", e.message()),
        }
        assert!(ProviderClient::new(Duration::from_secs(2), Duration::from_secs(5)).is_ok());
    }

    fn retry_after_of(value: &[u8], now: SystemTime) -> Option<u64> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(value) {
            headers.insert(reqwest::header::RETRY_AFTER, value);
        }
        retry_after(&headers, now)
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = |at: SystemTime| httpdate::fmt_http_date(at).into_bytes();
        assert_eq!(retry_after_of(b"120", now), Some(120));
        assert_eq!(retry_after_of(b" 7 ", now), Some(7));
        assert_eq!(retry_after_of(b"0", now), Some(0));
        assert_eq!(
            retry_after_of(b"99999999999999999999999", now),
            Some(u64::MAX)
        );
        let later = now + Duration::from_secs(90);
        assert_eq!(retry_after_of(&date(later), now), Some(90));
        // A date has whole seconds; part of one left still counts as a second.
        let a_moment_after = now + Duration::from_millis(500);
        assert_eq!(retry_after_of(&date(later), a_moment_after), Some(90));
        let earlier = now - Duration::from_secs(90);
        assert_eq!(retry_after_of(&date(earlier), now), Some(0));
        for unreadable in [&b""[..], b"soon", b"-5", b"1.5", b"12 s", b"\xff"] {
            assert_eq!(retry_after_of(unreadable, now), None, "{unreadable:?}");
        }
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), now), None);
    }
}
