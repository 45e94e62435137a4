//! Bounded HTTP fetches from the identity provider: timeouts, size limits, error mapping.

use std::time::Duration;

use url::Url;

/// Why a fetch from the provider failed. Never contains a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request to the identity provider timed out")]
    Timeout,
    #[error("identity provider unreachable")]
    Connect,
    #[error("identity provider answered HTTP {0}")]
    Status(u16),
    #[error("identity provider response larger than {0} bytes")]
    TooLarge(usize),
    #[error("identity provider response is not valid JSON")]
    NotJson,
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else {
            FetchError::Connect
        }
    }
}

/// The HTTP client used for every call to the provider.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub(crate) fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            // A token must never drive a request elsewhere; redirects are not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oidc-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// GETs `url` and parses the JSON body, reading at most `max_bytes`.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        max_bytes: usize,
    ) -> Result<T, FetchError> {
        let mut response = self
            .client
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
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
        serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)
    }
}
