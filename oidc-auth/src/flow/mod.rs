//! The auth endpoints, framework-free: login and callback (authorization code with PKCE), the
//! token endpoint (code, refresh, device polling), device authorization, logout and userinfo.
//!
//! Each endpoint takes the raw query string, form body or `Authorization` header values and
//! returns an [`EndpointResponse`] or an [`AuthError`]; the axum and actix-web modules only
//! translate those.

mod device;
mod grants;
mod id_token;
mod login;
pub(crate) mod redirect;
mod routes;
pub(crate) mod seal;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::auth::{OidcAuth, paced_log};
use crate::error::{AuthError, ErrorKind};
use crate::provider::{Discovery, FetchError};

pub(crate) use device::MAX_DEVICE_SECONDS;
#[cfg(any(feature = "axum", feature = "actix-web"))]
pub(crate) use routes::Mounted;
pub use routes::{AuthEndpoint, AuthRouterSpec, AuthRoutes};

/// Largest form body the token endpoint reads.
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;
/// Largest answer read from the provider's token, device or userinfo endpoint.
const MAX_PROVIDER_ANSWER: usize = 64 * 1024;

/// A successful answer of an auth endpoint, independent of any web framework.
///
/// Its `Debug` output holds no secret: a JSON body shows its field names only (a Token JSON
/// carries tokens), a redirect its target without the query (a callback carries the code and
/// state).
///
/// ```
/// use oidc_auth::EndpointResponse;
/// let r = EndpointResponse::Redirect { location: "https://app.example/cb?code=c0de".into() };
/// assert_eq!(r.status(), 302);
/// assert!(!format!("{r:?}").contains("c0de"));
/// ```
#[derive(Clone, PartialEq)]
pub enum EndpointResponse {
    /// A JSON body with this status. The adapters send it with `Cache-Control: no-store` and
    /// `Pragma: no-cache` (RFC 6749 section 5.1), so that no client or proxy keeps the tokens
    /// it may carry; a server sending it by hand must set those headers too.
    Json {
        /// HTTP status code.
        status: u16,
        /// The body.
        body: Value,
    },
    /// A `302 Found` to `location`.
    Redirect {
        /// The target URL.
        location: String,
    },
}

impl std::fmt::Debug for EndpointResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointResponse::Json { status, body } => {
                let fields: Vec<&str> = body
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                f.debug_struct("Json")
                    .field("status", status)
                    .field("fields", &fields)
                    .finish_non_exhaustive()
            }
            EndpointResponse::Redirect { location } => {
                let target = location.split(['?', '#']).next().unwrap_or_default();
                f.debug_struct("Redirect")
                    .field("location", &target)
                    .finish_non_exhaustive()
            }
        }
    }
}

impl EndpointResponse {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            EndpointResponse::Json { status, .. } => *status,
            EndpointResponse::Redirect { .. } => 302,
        }
    }

    fn ok(body: Value) -> Self {
        EndpointResponse::Json { status: 200, body }
    }
}

/// A form body over [`MAX_FORM_BYTES`]: 413 with the JSON error body of the endpoint's other
/// errors, never the framework's own text.
fn form_too_large() -> AuthError {
    AuthError::new(
        crate::error::ErrorKind::PayloadTooLarge,
        "the request body is larger than 16 KiB",
    )
}

/// A method an auth endpoint does not serve: 405 with the JSON error body of the endpoint's
/// other errors (the adapters add `Allow`), never the framework's empty answer.
#[cfg(any(feature = "axum", feature = "actix-web"))]
pub(crate) fn method_not_allowed() -> AuthError {
    AuthError::new(
        crate::error::ErrorKind::MethodNotAllowed,
        "this endpoint does not serve the request's method",
    )
}

/// What an adapter answers when the framework could not read a request body: `status` is the
/// framework's own status for the failure (413 for a body over the limit).
#[cfg(any(feature = "axum", feature = "actix-web"))]
pub(crate) fn unreadable_body(status: u16) -> AuthError {
    if status == 413 {
        form_too_large()
    } else {
        AuthError::oauth("invalid_request", "the request body could not be read")
    }
}

/// What the adapters check of a form POST (token, revocation) before handing its body to
/// [`OidcAuth::token_request`](crate::OidcAuth::token_request) or
/// [`OidcAuth::revoke_endpoint`](crate::OidcAuth::revoke_endpoint), and what a server wiring
/// those by hand must check too: that a body is sent as `application/x-www-form-urlencoded`
/// (RFC 6749 section 3.2, RFC 7009 section 2.1), whatever its parameters (`charset`). Any
/// other type, or none, is 400 `invalid_request`, so a `text/plain` body, which a web page can
/// send to another origin without asking, is never read as a form. An empty body needs no type.
///
/// ```
/// use oidc_auth::check_form_type;
/// let form = b"refresh-token=abc";
/// assert!(check_form_type(Some(b"application/x-www-form-urlencoded; charset=UTF-8"), form).is_ok());
/// assert_eq!(check_form_type(Some(b"text/plain"), form).map_err(|e| e.status()), Err(400));
/// assert_eq!(check_form_type(None, form).map_err(|e| e.status()), Err(400));
/// ```
pub fn check_form_type(content_type: Option<&[u8]>, body: &[u8]) -> Result<(), AuthError> {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    if body.is_empty() {
        return Ok(());
    }
    let media = content_type.map(|value| {
        let end = memchr::memchr(b';', value).unwrap_or(value.len());
        value[..end].trim_ascii()
    });
    match media {
        Some(media) if media.eq_ignore_ascii_case(FORM) => Ok(()),
        _ => Err(AuthError::oauth(
            "invalid_request",
            "send the form as application/x-www-form-urlencoded",
        )),
    }
}

/// What the adapters check of a form POST (token, revocation) they have read: its type, as
/// [`check_form_type`], and its `Content-Encoding`: none, or `identity`. A form sent compressed
/// is 400 `invalid_request` on both frameworks, rather than decoded by actix-web (when its
/// compression feature is on) and read as it is by axum.
#[cfg(any(feature = "axum", feature = "actix-web"))]
pub(crate) fn check_form<'a>(
    mut content_encodings: impl Iterator<Item = &'a [u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<(), AuthError> {
    if !content_encodings.all(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"identity")) {
        return Err(AuthError::oauth(
            "invalid_request",
            "send the form without a content coding (no Content-Encoding)",
        ));
    }
    check_form_type(content_type, body)
}

/// Parses a POST form body into `T`: 413 over [`MAX_FORM_BYTES`], else as [`parse_params`].
pub(crate) fn parse_form<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, AuthError> {
    if raw.len() > MAX_FORM_BYTES {
        return Err(form_too_large());
    }
    parse_params(raw)
}

/// Parses a query string into `T`, as a 400 `invalid_request` on failure.
pub(crate) fn parse_params<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, AuthError> {
    if raw.len() > MAX_FORM_BYTES {
        return Err(AuthError::oauth(
            "invalid_request",
            "the request is too large",
        ));
    }
    serde_urlencoded::from_bytes(&without_empty_values(raw))
        .map_err(|_| AuthError::oauth("invalid_request", "the request parameters are malformed"))
}

/// `raw` without its parameters that have no value (`name=` or `name`): RFC 6749 section 3.1
/// has them "treated as if they were omitted from the request", so that an empty `error=`
/// does not make a callback an error callback, nor an empty `grant_type=` turn a refresh away.
fn without_empty_values(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let has_value =
        |pair: &[u8]| memchr::memchr(b'=', pair).is_some_and(|equals| equals + 1 < pair.len());
    if raw.split(|b| *b == b'&').all(has_value) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let kept: Vec<&[u8]> = raw.split(|b| *b == b'&').filter(|p| has_value(p)).collect();
    std::borrow::Cow::Owned(kept.join(&b'&'))
}

/// Keeps a provider error code only if it looks like one (`[a-z_]`, short): it goes into our
/// body at top level, and must not carry anything else through.
fn provider_code(value: &Value) -> Option<String> {
    let code = value.get("error")?.as_str()?;
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    .then(|| code.to_owned())
}

/// How a provider's answer with a status outside 2xx becomes the client's answer: given the
/// status and the answer's JSON (`null` when it is not JSON).
type Refusal = fn(u16, &Value) -> AuthError;

/// OAuth codes by which a provider refuses this server's own client, its credentials or its
/// registration (RFC 6749 section 5.2), rather than the grant a caller brought: passing them on
/// would tell a client such as py-oidc-auth-client that its own grant failed.
const OWN_CLIENT_REFUSALS: [&str; 3] = [
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
];

/// Provider statuses that say nothing about the request, only "not now": a timeout, throttling,
/// an overloaded provider or a gateway that gave up waiting for it.
fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 503 | 504)
}

/// 503 with `Retry-After` for a [transient](is_transient) provider status, when the provider
/// said not how long to wait.
fn try_again_later() -> AuthError {
    AuthError::unavailable("the identity provider is busy; try again later").with_retry_after(5)
}

/// The longest wait passed on from a provider's `Retry-After`: a provider, or a proxy in front
/// of it, asking for more is more likely misconfigured than down for that long, and a client
/// told to wait hours would rather give up.
const MAX_PROVIDER_RETRY_AFTER: u64 = 3600;

/// `error` with the provider's own `Retry-After` (at least 1 s, at most
/// [`MAX_PROVIDER_RETRY_AFTER`]) when the provider answered with a [transient](is_transient)
/// `status` and `error` asks the client to try again later: a throttling provider knows best
/// when it can take the next request, and clients retrying sooner only prolong the throttling.
fn with_providers_wait(error: AuthError, status: u16, retry_after: Option<u64>) -> AuthError {
    match retry_after {
        Some(secs) if is_transient(status) && error.retry_after().is_some() => {
            error.with_retry_after(secs.min(MAX_PROVIDER_RETRY_AFTER))
        }
        _ => error,
    }
}

/// What a provider's answer with a status outside 2xx means for the client (the [`Refusal`] of
/// every provider endpoint but the device start). The caller's own refusals (`invalid_grant`,
/// `authorization_pending`, ...) keep their code in a 400; a refusal of this server's client
/// ([`OWN_CLIENT_REFUSALS`]) is a misconfiguration for the operator: 502, logged as an error;
/// a [transient](is_transient) status is 503 with `Retry-After`; anything else is 502.
fn provider_refusal(status: u16, body: &Value) -> AuthError {
    match status {
        // Timeout, throttling and overload say nothing about the grant: try again later.
        // Logged by the caller, paced: under throttling every request gets one.
        status if is_transient(status) => try_again_later(),
        400..=499 => match provider_code(body) {
            Some(code) if OWN_CLIENT_REFUSALS.contains(&code.as_str()) => {
                // Not paced: every request fails so until the operator acts, and a pace shared
                // by the whole process could hide one handle's misconfiguration behind another's.
                tracing::error!(
                    status,
                    error = %code,
                    "identity provider refused this server's client: check its client id, secret and the grants it may use at the provider"
                );
                AuthError::new(
                    ErrorKind::BadGateway,
                    "the identity provider refused this server's client; the server log has the details",
                )
            }
            Some(code) => {
                tracing::info!(status, error = %code, "identity provider refused a request");
                AuthError::oauth(code, "the identity provider refused the request")
            }
            // No error code (RFC 6749 section 5.2 requires one): a gateway or a provider
            // malfunction, which says nothing about the grant, so nothing is ended over it.
            None => {
                paced_log!(
                    warn,
                    status,
                    "identity provider refused a request without an error code"
                );
                AuthError::new(
                    ErrorKind::BadGateway,
                    "the identity provider refused the request without an error code",
                )
            }
        },
        // Logged by the caller, paced, as a busy provider is.
        status => fetch_error(FetchError::Status(status)),
    }
}

/// A provider's lifetime or interval in seconds: a JSON integer, or a string of one (Azure AD's
/// v1 endpoints send them so).
fn whole_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.parse().ok())
}

fn fetch_error(e: FetchError) -> AuthError {
    match e {
        FetchError::Timeout | FetchError::Connect => {
            AuthError::unavailable("the identity provider is unreachable").with_retry_after(5)
        }
        FetchError::Busy => {
            AuthError::unavailable("too many requests to the identity provider are under way")
                .with_retry_after(1)
        }
        FetchError::Status(status) if is_transient(status) => try_again_later(),
        FetchError::Status(_)
        | FetchError::TooLarge(_)
        | FetchError::NotJson
        | FetchError::NoJwksUri
        | FetchError::Unsendable => AuthError::new(
            ErrorKind::BadGateway,
            "the identity provider answered with an error",
        ),
    }
}

/// The answer of a provider refresh shared by the requests waiting for it.
type RefreshAnswer = Option<Result<Arc<Map<String, Value>>, AuthError>>;

/// Provider refreshes under way, and answers no request received, by the SHA-256 of their
/// refresh token; see [`OidcAuth::shared_refresh`].
#[derive(Default)]
pub(crate) struct RefreshFlights(std::sync::Mutex<Refreshes>);

/// What [`RefreshFlights`] guards.
#[derive(Default)]
pub(crate) struct Refreshes {
    /// Under way: an entry lives only while its provider call does.
    pub(crate) flights: HashMap<[u8; 32], tokio::sync::watch::Receiver<RefreshAnswer>>,
    /// Answers that came when every request waiting for them had gone, with when they came:
    /// the provider has rotated the token, so each is handed, once, to the next request that
    /// presents it within [`UNCLAIMED_ANSWER_SECS`].
    unclaimed: HashMap<[u8; 32], Unclaimed>,
}

/// A provider's refresh answer no request received, and when it came (unix seconds).
type Unclaimed = (Arc<Map<String, Value>>, i64);

/// How long an answer no request received is kept for the token's next presentation: a client
/// that timed out retries within this, and one that comes later is the provider's to judge.
const UNCLAIMED_ANSWER_SECS: i64 = 120;
/// Answers no request received kept at most.
const MAX_UNCLAIMED_ANSWERS: usize = 1024;

impl Refreshes {
    /// Keeps `answer`, which no request received, for the token's next presentation.
    fn keep(&mut self, hash: [u8; 32], answer: Arc<Map<String, Value>>, now: i64) {
        self.unclaimed
            .retain(|_, (_, at)| now >= *at && now - *at < UNCLAIMED_ANSWER_SECS);
        if self.unclaimed.len() >= MAX_UNCLAIMED_ANSWERS {
            tracing::warn!(
                "a refresh answer no request received is dropped: too many are kept; its token is spent at the provider"
            );
            return;
        }
        self.unclaimed.insert(hash, (answer, now));
    }

    /// The answer kept for the token with `hash`, taken out; its lifetimes (`expires_in`,
    /// `refresh_expires_in`) count from now, and are at least a second: a lifetime of 0 reads
    /// as none given, which the Token JSON takes for the default.
    fn claim(&mut self, hash: &[u8; 32], now: i64) -> Option<Arc<Map<String, Value>>> {
        // Out of memory once past their time, whether claimed or not: they hold live tokens.
        self.unclaimed
            .retain(|_, (_, at)| now >= *at && now - *at < UNCLAIMED_ANSWER_SECS);
        let (answer, at) = self.unclaimed.remove(hash)?;
        let waited = now - at;
        if waited == 0 {
            return Some(answer);
        }
        let mut aged = (*answer).clone();
        for name in ["expires_in", "refresh_expires_in"] {
            if let Some(lifetime) = aged.get(name).and_then(whole_seconds) {
                let left = lifetime.saturating_sub(waited).max(1);
                aged.insert(name.to_owned(), Value::from(left));
            }
        }
        Some(Arc::new(aged))
    }
}

/// Provider calls running detached from their requests at most (grants, refreshes without
/// broker mode, background revocations): a client that sends and goes away in a loop cannot
/// pile up tasks, each holding its form, faster than the provider answers them. Past it a
/// request is answered 503 and a background revocation is skipped (and logged).
const MAX_DETACHED_CALLS: usize = 1024;

/// The permits of [`MAX_DETACHED_CALLS`].
pub(crate) struct DetachedCalls(Arc<tokio::sync::Semaphore>);

impl Default for DetachedCalls {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(MAX_DETACHED_CALLS)))
    }
}

impl DetachedCalls {
    /// A place for one detached call; 503 at once when all are taken.
    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        Arc::clone(&self.0).try_acquire_owned().map_err(|_| {
            AuthError::unavailable("too many requests to the identity provider are under way")
                .with_retry_after(1)
        })
    }
}

/// Takes a refresh flight out of the map when its task ends, however it ends (answered, or
/// dropped with its runtime, or a panic), so that no request meets a flight that will never
/// answer; and only its own flight, not a newer one under the same token.
struct Landing {
    auth: OidcAuth,
    hash: [u8; 32],
    own: tokio::sync::watch::Receiver<RefreshAnswer>,
}

impl Landing {
    /// Lands the flight with its `answer`: out of the map, and, when the provider rotated the
    /// token and no request is left to receive it (`sender` has no receiver but `own`),
    /// kept for the token's next presentation. Both under one lock, so that a request coming
    /// meanwhile either joins the flight or finds the kept answer, never neither.
    fn land(
        self,
        sender: &tokio::sync::watch::Sender<RefreshAnswer>,
        answer: &Result<Arc<Map<String, Value>>, AuthError>,
    ) {
        let mut refreshes = self.auth.refreshes().lock();
        self.take_out(&mut refreshes);
        // Only a rotation needs keeping: without a new refresh token the presented one still
        // works, and its retry may ask again.
        if let Ok(answer) = answer
            && answer.contains_key("refresh_token")
            && sender.receiver_count() <= 1
        {
            refreshes.keep(self.hash, Arc::clone(answer), self.auth.now());
        }
    }

    fn take_out(&self, refreshes: &mut Refreshes) {
        if refreshes
            .flights
            .get(&self.hash)
            .is_some_and(|flight| flight.same_channel(&self.own))
        {
            refreshes.flights.remove(&self.hash);
        }
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut refreshes = self.auth.refreshes().lock();
        self.take_out(&mut refreshes);
    }
}

impl RefreshFlights {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Refreshes> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl OidcAuth {
    /// Revokes a provider refresh token that no one holds (any more) at the provider, in the
    /// background: a slow or unreachable provider only delays its own side, and a failure is
    /// logged.
    pub(crate) fn revoke_refresh_in_background(&self, token: String) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.detached_calls().permit() else {
            tracing::warn!(
                "a refresh token no one holds is not revoked at the provider: too many provider calls are under way"
            );
            return;
        };
        let auth = self.clone();
        handle.spawn(async move {
            let _permit = permit;
            if let Err(e) = auth
                .provider_revoke(token, Some("refresh_token".to_owned()))
                .await
            {
                tracing::info!(error = %e, "the provider did not revoke a refresh token no one holds");
            }
        });
    }

    /// [`provider_token`](Self::provider_token) for a grant, run to its end in a task of its
    /// own: once asked, the provider may have spent the code, so a request that goes away
    /// meanwhile (a client that disconnects) must not leave its answer unread. The answer comes
    /// back as a [`Granted`], which revokes its refresh token unless a client is given it.
    /// (A refresh grant without broker mode goes through [`shared_refresh`](Self::shared_refresh)
    /// instead: its answer is never revoked, as revoking a rotated token ends the whole grant at
    /// many providers, the client's token with it.)
    pub(crate) async fn provider_grant_answer(
        &self,
        form: Vec<(&'static str, String)>,
    ) -> Result<Granted, AuthError> {
        let revoker = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let answer = self.provider_token(form).await?;
            return Ok(Granted::new(answer, revoker));
        };
        let permit = self.detached_calls().permit()?;
        let (answered, answer) = tokio::sync::oneshot::channel();
        let auth = self.clone();
        let asked = async move {
            let granted = auth
                .provider_token(form)
                .await
                .map(|answer| Granted::new(answer, revoker));
            // The place goes back first: a `Granted` no request reads is dropped below, and
            // revokes its refresh token in a call that takes a place of its own.
            drop(permit);
            // Not sent, or sent and never read: the `Granted` is dropped, and revokes.
            let _ = answered.send(granted);
        };
        runtime.spawn(tracing::Instrument::in_current_span(asked));
        answer.await.unwrap_or_else(|_| {
            Err(AuthError::unavailable(
                "the identity provider's answer was lost",
            ))
        })
    }

    /// A refresh grant of provider refresh token `token`, without broker mode: one provider
    /// call, in a task of its own, shared by every request that presents the same token while
    /// it is under way. Two of them would each spend the token at a provider that rotates
    /// refresh tokens, and the second would be taken there for a replay, which ends the whole
    /// grant at many providers; a client that retries a refresh it gave up on meets the first.
    /// Once the answer is in, the flight ends: a later request with the token is the
    /// provider's to judge, so its detection of replays keeps working. One exception: an
    /// answer that came when every request had gone (the client timed out) would leave the
    /// client with a token the provider has rotated, and its retry would be taken for a
    /// replay. That answer is handed to the next request presenting the token, once, within
    /// [`UNCLAIMED_ANSWER_SECS`] (its `expires_in` counted from then); the one after is the
    /// provider's again, which takes it for the replay it is.
    pub(crate) async fn shared_refresh(
        &self,
        token: String,
    ) -> Result<Arc<Map<String, Value>>, AuthError> {
        let form = |token| {
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token),
            ]
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.provider_token(form(token)).await.map(Arc::new);
        };
        let hash = crate::broker::sha256(token.as_bytes());
        let (mut flight, started) = {
            let mut refreshes = self.refreshes().lock();
            if let Some(answer) = refreshes.claim(&hash, self.now()) {
                return Ok(answer);
            }
            match refreshes.flights.get(&hash) {
                Some(flight) => (flight.clone(), None),
                None => {
                    let permit = self.detached_calls().permit()?;
                    let (sender, flight) = tokio::sync::watch::channel(None);
                    refreshes.flights.insert(hash, flight.clone());
                    (flight, Some((sender, permit)))
                }
            }
        };
        // Spawned once the map is unlocked: a task dropped at once (its runtime shutting down)
        // takes its flight out of the map as it goes.
        if let Some((sender, permit)) = started {
            let landing = Landing {
                auth: self.clone(),
                hash,
                own: flight.clone(),
            };
            let asked = async move {
                let _permit = permit;
                let answer = landing.auth.provider_token(form(token)).await.map(Arc::new);
                // Landed before the answer is out: whoever comes after it asks anew, or is
                // handed the answer if no one was left to receive it.
                landing.land(&sender, &answer);
                let _ = sender.send(Some(answer));
            };
            runtime.spawn(tracing::Instrument::in_current_span(asked));
        }
        match flight.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        }
        .unwrap_or_else(|| {
            Err(AuthError::unavailable(
                "the identity provider's answer was lost",
            ))
        })
    }

    /// A provider endpoint from the discovery document; 503 when the provider has none (or
    /// cannot be reached).
    pub(crate) async fn provider_endpoint(
        &self,
        pick: fn(&Discovery) -> Option<&url::Url>,
        missing: &'static str,
    ) -> Result<url::Url, AuthError> {
        let discovery = self.provider().discovery().await?;
        pick(&discovery)
            .cloned()
            .ok_or_else(|| AuthError::unavailable(missing))
    }

    /// A token request at the provider's token endpoint.
    pub(crate) async fn provider_token(
        &self,
        form: Vec<(&'static str, String)>,
    ) -> Result<Map<String, Value>, AuthError> {
        let endpoint = self
            .provider_endpoint(
                |d| d.token_endpoint.as_ref(),
                "the identity provider has no token endpoint",
            )
            .await?;
        self.provider_post(&endpoint, form, provider_refusal).await
    }

    /// A POST of `form` to a provider endpoint with the client's authentication: HTTP Basic
    /// with a client secret, else `client_id` in the form.
    fn authenticated_post(
        &self,
        endpoint: &url::Url,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let config = self.config();
        let mut request = self.provider().http().post(endpoint);
        match config.client_secret() {
            Some(secret) => {
                // RFC 6749 section 2.3.1: both parts form-encoded, then Basic.
                let enc = |s: &str| {
                    serde_urlencoded::to_string([("", s)]).unwrap_or_default()[1..].to_owned()
                };
                request = request.basic_auth(enc(config.client_id()), Some(enc(secret.expose())));
            }
            None => form.push(("client_id", config.client_id().to_owned())),
        }
        request.form(&form)
    }

    /// Revokes `token` at the provider's revocation endpoint (RFC 7009), with the client's
    /// authentication and `token_type_hint` when given. A provider without one is 400
    /// `unsupported_token_type`; its refusals are answered as in [`provider_refusal`].
    pub(crate) async fn provider_revoke(
        &self,
        token: String,
        hint: Option<String>,
    ) -> Result<(), AuthError> {
        let discovery = self.provider().discovery().await?;
        let Some(endpoint) = discovery.revocation_endpoint.clone() else {
            return Err(AuthError::oauth(
                "unsupported_token_type",
                "the identity provider does not support revocation",
            ));
        };
        let mut form = vec![("token", token)];
        form.extend(hint.map(|hint| ("token_type_hint", hint)));
        self.provider_send(&endpoint, form, provider_refusal)
            .await
            .map(drop)
    }

    /// POSTs `form` to a provider endpoint with the client's authentication and returns the
    /// body of a 2xx answer. Any other answer becomes the error `refusal` makes of its status
    /// and JSON (`null` when it is not JSON).
    async fn provider_send(
        &self,
        endpoint: &url::Url,
        form: Vec<(&'static str, String)>,
        refusal: Refusal,
    ) -> Result<Vec<u8>, AuthError> {
        let request = self.authenticated_post(endpoint, form);
        let answer = self
            .provider()
            .http()
            .send(request, MAX_PROVIDER_ANSWER)
            .await
            .map_err(fetch_error)?;
        if (200..=299).contains(&answer.status) {
            return Ok(answer.body);
        }
        let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let error = refusal(answer.status, &value);
        if is_transient(answer.status) || !(400..=499).contains(&answer.status) {
            self.log_provider_trouble(answer.status, &error);
        }
        Err(with_providers_wait(
            error,
            answer.status,
            answer.retry_after,
        ))
    }

    /// POSTs `form` to a provider endpoint with the client's authentication and returns the
    /// JSON object of a successful answer; an error answer is turned into ours by `refusal`
    /// (usually [`provider_refusal`]).
    pub(crate) async fn provider_post(
        &self,
        endpoint: &url::Url,
        form: Vec<(&'static str, String)>,
        refusal: Refusal,
    ) -> Result<Map<String, Value>, AuthError> {
        match serde_json::from_slice(&self.provider_send(endpoint, form, refusal).await?) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(fetch_error(FetchError::NotJson)),
        }
    }
}

/// A token answer the provider granted, on its way to a client. When it is dropped before
/// [`finish`](Self::finish) succeeded (the answer could not be used: an ID token that does not
/// verify, a store that cannot record the session; or the request went away: a client that
/// disconnected), its refresh token, which no client holds, is revoked at the provider rather
/// than left as a grant no one can end. Not for a refresh grant (see
/// [`OidcAuth::shared_refresh`]).
pub(crate) struct Granted {
    answer: Map<String, Value>,
    /// Who revokes an unclaimed refresh token.
    revoker: OidcAuth,
    claimed: std::sync::atomic::AtomicBool,
}

impl Granted {
    fn new(answer: Map<String, Value>, revoker: OidcAuth) -> Self {
        Self {
            answer,
            revoker,
            claimed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The provider's token answer.
    pub(crate) fn answer(&self) -> &Map<String, Value> {
        &self.answer
    }

    /// Runs `finish`, which turns the answer into the client's; when it succeeds, the answer is
    /// the client's, and its refresh token is kept.
    pub(crate) async fn finish<T>(
        &self,
        finish: impl Future<Output = Result<T, AuthError>>,
    ) -> Result<T, AuthError> {
        let finished = finish.await;
        if finished.is_ok() {
            self.claimed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        finished
    }
}

impl Drop for Granted {
    fn drop(&mut self) {
        if *self.claimed.get_mut() {
            return;
        }
        let token = self.answer.get("refresh_token").and_then(Value::as_str);
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            self.revoker.revoke_refresh_in_background(token.to_owned());
        }
    }
}

/// The Token JSON of the wire contract from a provider token answer: absolute `expires` and
/// `refresh_expires` (Unix seconds) plus the standard relative fields.
///
/// A `refresh_expires_in` of 0 or none (Keycloak offline tokens) means "no stated expiry", not
/// "expired": the configured refresh lifetime is announced instead.
///
/// A refresh answer without a refresh token comes from a provider that does not rotate them
/// (RFC 6749 section 6 lets it): the client keeps the one it sent, `held`, and is given it
/// back, rather than an empty one it would take for the end of its session. Lifetimes may be
/// numbers or strings of digits (older Azure AD endpoints send strings).
fn token_json(
    answer: &Map<String, Value>,
    held: Option<&str>,
    now: i64,
    refresh_lifetime: i64,
) -> Result<Value, AuthError> {
    let access_token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthError::new(
                ErrorKind::BadGateway,
                "the identity provider sent no access token",
            )
        })?;
    let seconds = |name: &str| answer.get(name).and_then(whole_seconds).filter(|v| *v > 0);
    let expires_in = seconds("expires_in").unwrap_or(300);
    let refresh_token = answer
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .or(held)
        .unwrap_or("");
    let refresh_expires_in = match seconds("refresh_expires_in") {
        Some(secs) => secs,
        None if !refresh_token.is_empty() => refresh_lifetime,
        None => 0,
    };
    let mut body = json!({
        "access_token": access_token,
        "token_type": answer.get("token_type").and_then(Value::as_str).unwrap_or("Bearer"),
        "expires": now.saturating_add(expires_in),
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "refresh_expires": if refresh_token.is_empty() { 0 } else { now.saturating_add(refresh_expires_in) },
        "refresh_expires_in": refresh_expires_in,
        "scope": answer.get("scope").and_then(Value::as_str).unwrap_or(""),
    });
    if let Some(id_token) = answer.get("id_token").and_then(Value::as_str) {
        body["id_token"] = Value::String(id_token.to_owned());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters without a value are taken as omitted (RFC 6749 section 3.1), wherever they
    /// stand; the rest, and their order, are kept, and a value that only decodes to nothing
    /// (`+` is a space) is a value.
    #[test]
    fn parameters_without_a_value_are_omitted() {
        for (raw, kept) in [
            ("a=1&b=2", "a=1&b=2"),
            ("a=&b=2", "b=2"),
            ("a=1&b", "a=1"),
            ("&a=1&&b=&c==&", "a=1&c=="),
            ("grant_type=&refresh-token=r", "refresh-token=r"),
            ("a=+", "a=+"),
            ("=", ""),
            ("", ""),
        ] {
            assert_eq!(
                without_empty_values(raw.as_bytes()).as_ref(),
                kept.as_bytes(),
                "{raw}"
            );
        }
        #[derive(serde::Deserialize)]
        struct Callback {
            code: Option<String>,
            error: Option<String>,
        }
        let parsed: Callback =
            parse_params(b"code=c&error=").unwrap_or_else(|e| panic!("parsed: {e}"));
        assert_eq!(parsed.code.as_deref(), Some("c"));
        assert_eq!(parsed.error, None);
        // An empty one beside a value is no repetition; two values are.
        let once: Result<Callback, _> = parse_params(b"code=&code=c");
        assert_eq!(once.ok().and_then(|c| c.code).as_deref(), Some("c"));
        let twice: Result<Callback, _> = parse_params(b"code=b&code=c");
        assert!(twice.is_err());
    }

    /// A refresh flight whose task is dropped before it answers (its runtime shut down, as
    /// when a server on a runtime of its own stops) leaves the map: otherwise every later
    /// request with that refresh token would wait on a flight that never answers, and be 503
    /// for as long as the process runs.
    #[cfg(feature = "testing")]
    #[test]
    fn a_refresh_flight_whose_task_is_dropped_leaves_the_map() {
        use crate::testing::{Endpoint, Fault};
        let main = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
        let (_idp, auth) = main.block_on(async {
            let (idp, auth) = provider_and_auth().await;
            idp.set_fault(Endpoint::Token, Fault::Hang);
            (idp, auth)
        });
        let doomed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        doomed.block_on(async {
            let waited = tokio::time::timeout(
                std::time::Duration::from_millis(500),
                auth.shared_refresh("r1".to_owned()),
            )
            .await;
            assert!(waited.is_err(), "the provider hangs: {waited:?}");
        });
        assert_eq!(auth.refreshes().lock().flights.len(), 1, "under way");
        drop(doomed);
        assert!(auth.refreshes().lock().flights.is_empty(), "left the map");
    }

    /// A mock provider, and a handle on it (client `app`, no broker mode).
    #[cfg(feature = "testing")]
    async fn provider_and_auth() -> (crate::testing::MockProvider, OidcAuth) {
        let idp = crate::testing::MockProvider::start()
            .await
            .unwrap_or_else(|e| panic!("provider: {e}"));
        let config = crate::OidcConfig::builder()
            .discovery_url(idp.discovery_url())
            .client_id("app")
            .build()
            .unwrap_or_else(|e| panic!("config: {e}"));
        (idp, OidcAuth::new(config))
    }

    /// Provider calls run detached from their requests take a place each, and past
    /// [`MAX_DETACHED_CALLS`] none is started: a grant or a new refresh is 503 at once with
    /// nothing sent and no flight left behind, and a background revocation is skipped. With
    /// places back, they reach the provider again.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn provider_calls_detached_from_their_requests_are_bounded() {
        use crate::testing::Endpoint;
        let (idp, auth) = provider_and_auth().await;
        let grant = || {
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
                ),
                ("device_code", "unknown".to_owned()),
            ]
        };
        let taken: Vec<_> = (0..MAX_DETACHED_CALLS)
            .map_while(|_| auth.detached_calls().permit().ok())
            .collect();
        assert_eq!(taken.len(), MAX_DETACHED_CALLS);

        let refused = auth.shared_refresh("r1".to_owned()).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503));
        assert!(
            auth.refreshes().lock().flights.is_empty(),
            "no flight left behind"
        );
        let refused = auth.provider_grant_answer(grant()).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503));
        auth.revoke_refresh_in_background("r2".to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(idp.hits(Endpoint::Token), 0);
        assert_eq!(idp.hits(Endpoint::Revocation), 0);

        drop(taken);
        let answered = auth.shared_refresh("r1".to_owned()).await.err();
        assert_eq!(
            answered.map(|e| e.status()),
            Some(400),
            "the provider's answer"
        );
        let answered = auth.provider_grant_answer(grant()).await.err();
        assert_eq!(
            answered.map(|e| e.status()),
            Some(400),
            "the provider's answer"
        );
        assert_eq!(idp.hits(Endpoint::Token), 2);
        auth.revoke_refresh_in_background("r2".to_owned());
        let settled = || {
            idp.hits(Endpoint::Revocation) == 1
                && auth.detached_calls().0.available_permits() == MAX_DETACHED_CALLS
        };
        for _ in 0..250 {
            if settled() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(settled(), "revoked, and every place is back");
    }

    /// With every place but one taken, a device grant whose poll went away is still revoked:
    /// its call gives its place back before the unread answer is dropped, so the revocation
    /// that drop starts finds one.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn an_unread_grant_is_revoked_with_one_place_left() {
        use crate::testing::{Endpoint, Fault};
        let (idp, auth) = provider_and_auth().await;
        idp.set_device_interval(Some(0));
        let started = auth.device_endpoint().await;
        assert!(started.is_ok(), "{started:?}");
        let Some((device_code, user_code)) = idp.last_device_code() else {
            panic!("a device code");
        };
        assert!(idp.approve_device(&user_code));
        let taken: Vec<_> = (1..MAX_DETACHED_CALLS)
            .map_while(|_| auth.detached_calls().permit().ok())
            .collect();
        assert_eq!(taken.len(), MAX_DETACHED_CALLS - 1);
        idp.set_fault(
            Endpoint::Token,
            Fault::Late(std::time::Duration::from_millis(300)),
        );
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            auth.provider_grant_answer(vec![
                ("grant_type", crate::flow::grants::DEVICE_GRANT.to_owned()),
                ("device_code", device_code),
            ]),
        )
        .await;
        assert!(gave_up.is_err(), "the poll went away before the answer");
        for _ in 0..150 {
            if idp.hits(Endpoint::Revocation) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            idp.hits(Endpoint::Revocation),
            1,
            "the unread grant was revoked"
        );
        let revoked = idp.last_revocation_request().unwrap_or_default();
        assert_eq!(
            revoked.get("token_type_hint").map(String::as_str),
            Some("refresh_token")
        );
    }

    /// An answer no request received is handed out once, within its time, with `expires_in`
    /// counted from when it is handed out; past the time, or the second time, there is none.
    #[test]
    fn an_unclaimed_refresh_answer_is_claimed_once_and_ages() {
        let answer = |expires_in: Value| {
            let Value::Object(map) = json!({
                "access_token": "a",
                "refresh_token": "r",
                "expires_in": expires_in,
                "refresh_expires_in": 1_800,
            }) else {
                panic!("an object");
            };
            Arc::new(map)
        };
        let mut refreshes = Refreshes::default();
        refreshes.keep([1; 32], answer(json!(300)), 1_000);
        refreshes.keep([2; 32], answer(json!("300")), 1_000);
        refreshes.keep([3; 32], answer(json!(300)), 1_000);
        refreshes.keep([4; 32], answer(json!(10)), 1_000);
        let claimed = refreshes.claim(&[1; 32], 1_030);
        let lifetimes =
            |a: Arc<Map<String, Value>>| (a["expires_in"].clone(), a["refresh_expires_in"].clone());
        assert_eq!(claimed.map(lifetimes), Some((json!(270), json!(1_770))));
        assert!(refreshes.claim(&[1; 32], 1_030).is_none(), "once");
        let claimed = refreshes.claim(&[2; 32], 1_000);
        assert_eq!(claimed.map(lifetimes), Some((json!("300"), json!(1_800))));
        // Past its lifetime: a second left, not 0, which would read as "none given".
        let claimed = refreshes.claim(&[4; 32], 1_060);
        assert_eq!(claimed.map(lifetimes), Some((json!(1), json!(1_740))));
        assert!(
            refreshes
                .claim(&[3; 32], 1_000 + UNCLAIMED_ANSWER_SECS)
                .is_none(),
            "too late"
        );
        refreshes.keep([5; 32], answer(json!(300)), 3_000);
        assert!(
            refreshes
                .claim(&[6; 32], 3_000 + UNCLAIMED_ANSWER_SECS)
                .is_none()
        );
        assert!(refreshes.unclaimed.is_empty(), "dropped once past its time");
        for i in 0..=MAX_UNCLAIMED_ANSWERS {
            let mut hash = [0; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            refreshes.keep(hash, answer(json!(300)), 2_000);
        }
        assert_eq!(refreshes.unclaimed.len(), MAX_UNCLAIMED_ANSWERS, "bounded");
    }

    #[cfg(any(feature = "axum", feature = "actix-web"))]
    #[test]
    fn only_a_form_type_lets_a_body_be_read_as_a_form() {
        let body = b"grant_type=refresh_token&refresh_token=r";
        for accepted in [
            &b"application/x-www-form-urlencoded"[..],
            b"Application/X-WWW-Form-Urlencoded",
            b"application/x-www-form-urlencoded; charset=UTF-8",
            b" application/x-www-form-urlencoded ;charset=utf-8",
        ] {
            assert!(
                check_form_type(Some(accepted), body).is_ok(),
                "{accepted:?}"
            );
        }
        for refused in [
            &b"text/plain"[..],
            b"text/plain; x=application/x-www-form-urlencoded",
            b"application/json",
            b"multipart/form-data; boundary=x",
            b"application/x-www-form-urlencodedx",
            b"",
            b"\xff",
        ] {
            let error = check_form_type(Some(refused), body).err();
            assert_eq!(error.map(|e| e.status()), Some(400), "{refused:?}");
        }
        assert_eq!(
            check_form_type(None, body).map_err(|e| e.status()),
            Err(400)
        );
        assert!(check_form_type(None, b"").is_ok());
        assert!(check_form_type(Some(b"text/plain"), b"").is_ok());
    }

    #[test]
    fn debug_of_an_endpoint_response_holds_no_secret() {
        let token = EndpointResponse::Json {
            status: 200,
            body: json!({"access_token": "acc3ss", "refresh_token": "r3fresh", "id_token": "1d"}),
        };
        let shown = format!("{token:?}");
        assert!(
            shown.contains("200") && shown.contains("access_token"),
            "{shown}"
        );
        for secret in ["acc3ss", "r3fresh", "1d\""] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let callback = EndpointResponse::Redirect {
            location: "http://127.0.0.1:5/cb?code=c0de&state=s|h4ndle#frag".into(),
        };
        let shown = format!("{callback:?}");
        assert!(shown.contains("http://127.0.0.1:5/cb"), "{shown}");
        for secret in ["c0de", "h4ndle", "frag"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn zero_refresh_expiry_means_no_stated_expiry() {
        let answer = json!({"access_token": "a", "expires_in": 60, "refresh_token": "r", "refresh_expires_in": 0});
        let body = token_json(
            answer.as_object().unwrap_or(&Map::new()),
            None,
            1000,
            86_400,
        )
        .unwrap_or_default();
        assert_eq!(body["expires"], 1060);
        assert_eq!(body["refresh_expires"], 1000 + 86_400);
    }

    /// A refresh answer without a refresh token (a provider that does not rotate them) gives
    /// the client back the one it sent, with the configured lifetime; a code exchange has none
    /// to give back. A new refresh token in the answer wins, and lifetimes sent as strings of
    /// digits are read.
    #[test]
    fn a_refresh_answer_without_a_refresh_token_keeps_the_one_sent() {
        let body = |answer: Value, held| {
            token_json(
                answer.as_object().unwrap_or(&Map::new()),
                held,
                1000,
                86_400,
            )
            .unwrap_or_else(|e| panic!("a token answer: {e}"))
        };
        let kept = body(
            json!({"access_token": "a", "expires_in": "3599"}),
            Some("r-held"),
        );
        assert_eq!(kept["refresh_token"], "r-held");
        assert_eq!(kept["refresh_expires"], 1000 + 86_400);
        assert_eq!(kept["refresh_expires_in"], 86_400);
        assert_eq!(kept["expires"], 1000 + 3599);
        let empty = body(
            json!({"access_token": "a", "refresh_token": "", "refresh_expires_in": "60"}),
            Some("r-held"),
        );
        assert_eq!(empty["refresh_token"], "r-held");
        assert_eq!(empty["refresh_expires"], 1060);
        let rotated = body(
            json!({"access_token": "a", "refresh_token": "r-new"}),
            Some("r-held"),
        );
        assert_eq!(rotated["refresh_token"], "r-new");
        let none = body(json!({"access_token": "a"}), None);
        assert_eq!(none["refresh_token"], "");
        assert_eq!(none["refresh_expires"], 0);
    }

    /// Lifetimes are the provider's numbers: the largest ones do not overflow the absolute
    /// times.
    #[test]
    fn huge_provider_lifetimes_do_not_overflow() {
        let answer = json!({"access_token": "a", "expires_in": i64::MAX, "refresh_token": "r", "refresh_expires_in": i64::MAX});
        let body = token_json(
            answer.as_object().unwrap_or(&Map::new()),
            None,
            1000,
            86_400,
        )
        .unwrap_or_else(|e| panic!("a token answer: {e}"));
        assert_eq!(body["expires"], i64::MAX);
        assert_eq!(body["expires_in"], i64::MAX);
        assert_eq!(body["refresh_expires"], i64::MAX);
    }

    /// A refusal of this server's client is not the caller's grant failing: 502 with a
    /// generic code, whatever the provider's status; the caller's own refusals keep theirs.
    #[test]
    fn refusals_of_this_servers_client_are_502() {
        for code in OWN_CLIENT_REFUSALS {
            for status in [400, 401, 403] {
                let e = provider_refusal(status, &json!({"error": code}));
                assert_eq!(
                    (e.status(), e.code()),
                    (502, Some("server_error")),
                    "{code}"
                );
                assert!(!e.description().contains(code), "{code}");
            }
        }
        let e = provider_refusal(400, &json!({"error": "invalid_grant"}));
        assert_eq!((e.status(), e.code()), (400, Some("invalid_grant")));
    }

    #[test]
    fn a_busy_provider_is_503_with_retry_after() {
        for status in [408, 429, 503, 504] {
            for body in [json!({"error": "temporarily_unavailable"}), Value::Null] {
                let e = provider_refusal(status, &body);
                assert_eq!(e.status(), 503, "{status} {body}");
                assert!(e.retry_after().is_some(), "{status}");
            }
            assert_eq!(fetch_error(FetchError::Status(status)).status(), 503);
        }
        for status in [500, 502, 404] {
            assert_eq!(provider_refusal(status, &Value::Null).status(), 502);
        }
    }

    #[test]
    fn provider_codes_are_passed_only_when_well_formed() {
        assert_eq!(
            provider_code(&json!({"error": "slow_down"})).as_deref(),
            Some("slow_down")
        );
        assert_eq!(provider_code(&json!({"error": "<script>"})), None);
        assert_eq!(provider_code(&json!({"error": 1})), None);
    }

    /// A request that cannot be built from what the provider gave (a bearer token with a line
    /// break) is the provider's fault, 502, not "unreachable" with a retry invited.
    #[test]
    fn an_unsendable_provider_request_is_a_bad_gateway() {
        let unsendable = reqwest::Client::new()
            .get("http://127.0.0.1:9/userinfo")
            .bearer_auth("access\r\ntoken")
            .build()
            .err()
            .unwrap_or_else(|| panic!("a header with a line break cannot be built"));
        let e = FetchError::from(unsendable);
        assert!(matches!(e, FetchError::Unsendable), "{e:?}");
        let answer = fetch_error(e);
        assert_eq!(answer.status(), 502);
        assert_eq!(answer.retry_after(), None);
    }
}
