//! The HTTP side of the mock provider: axum routes, fault injection, hit counting, and a
//! listener that can make connections vanish.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::fault::{Endpoint, Fault};
use super::provider::Shared;
use super::{flows, grants};

/// Body of [`Fault::Garbage`]: what a misconfigured proxy would send instead of JSON.
const GARBAGE: &str = "<html><head><title>502 Bad Gateway</title></head>\
<body><h1>Bad Gateway</h1></body></html>";

/// Serves `shared` on `listener` in a spawned task until shutdown is requested; the returned
/// receiver turns `true` once the server has fully stopped.
pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> watch::Receiver<bool> {
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let app = router(Arc::clone(&shared)).into_make_service_with_connect_info::<Conn>();
    let listener = GatedListener {
        inner: listener,
        shared: Arc::clone(&shared),
    };
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shared.shutdown_requested().await })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "mock OpenID provider stopped with an error");
        }
        stopped_tx.send_replace(true);
    });
    stopped_rx
}

fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        router = router.route(
            endpoint.path(),
            with_faults(&shared, endpoint, handler(endpoint)),
        );
    }
    router.fallback(not_found).with_state(shared)
}

/// The real handler of each endpoint, before faults.
fn handler(endpoint: Endpoint) -> MethodRouter<Arc<Shared>> {
    match endpoint {
        Endpoint::Discovery => get(discovery),
        Endpoint::Jwks => get(jwks),
        Endpoint::Authorize => get(flows::authorize),
        Endpoint::Token => post(grants::token),
        Endpoint::Device => post(flows::device_authorization),
        Endpoint::Userinfo => get(flows::userinfo).post(flows::userinfo),
        Endpoint::EndSession => get(flows::end_session),
        Endpoint::Revocation => post(grants::revoke),
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.discovery_document())
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.jwks_document())
}

async fn not_found(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
) -> Response {
    if shared.all_down() {
        return conn.drop_unanswered();
    }
    (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response()
}

/// The endpoint a fault layer guards, with the state it reads faults and counters from.
#[derive(Clone)]
struct Guarded {
    shared: Arc<Shared>,
    endpoint: Endpoint,
}

/// Wraps an endpoint's real handler so its fault is applied and its hits counted. New endpoints
/// only need their own entry in [`Endpoint`] and in [`handler`].
fn with_faults(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    route: MethodRouter<Arc<Shared>>,
) -> MethodRouter<Arc<Shared>> {
    let guarded = Guarded {
        shared: Arc::clone(shared),
        endpoint,
    };
    route.layer(middleware::from_fn_with_state(guarded, apply_fault))
}

async fn apply_fault(
    State(Guarded { shared, endpoint }): State<Guarded>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    request: Request,
    next: Next,
) -> Response {
    let fault = shared.fault(endpoint);
    if fault == Fault::Down {
        return conn.drop_unanswered();
    }
    shared.count_hit(endpoint);
    match fault {
        Fault::None | Fault::Down => next.run(request).await,
        Fault::Status(code) => fault_status(code),
        Fault::Json(code, body) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response(),
        Fault::Empty(code) => fault_empty(code),
        Fault::RetryAfter(code, wait) => {
            let mut response = fault_status(code);
            if let Ok(wait) = HeaderValue::from_str(&wait) {
                response.headers_mut().insert(RETRY_AFTER, wait);
            }
            response
        }
        Fault::Garbage => (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/html; charset=utf-8")],
            GARBAGE,
        )
            .into_response(),
        Fault::Truncated => truncate(next.run(request).await).await,
        Fault::Slow(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => next.run(request).await,
                () = shared.shutdown_requested() => shutting_down(),
            }
        }
        Fault::Late(delay) => {
            let response = next.run(request).await;
            tokio::select! {
                () = tokio::time::sleep(delay) => response,
                () = shared.shutdown_requested() => shutting_down(),
            }
        }
        Fault::Hang => {
            shared.shutdown_requested().await;
            shutting_down()
        }
    }
}

fn fault_status(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": "mock_fault",
        "error_description": format!("MockProvider answered {code} because of Fault::Status"),
    });
    (status, Json(body)).into_response()
}

fn fault_empty(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::UNAUTHORIZED {
        let challenge = [(WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)];
        return (status, challenge).into_response();
    }
    status.into_response()
}

/// Keeps the status and headers of `response` but only the first half of its body.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // Our own handlers produce in-memory JSON bodies, which cannot fail to collect.
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

fn shutting_down() -> Response {
    let body = json!({"error": "mock_shutdown", "error_description": "MockProvider stopped"});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// A `TcpListener` that closes new connections straight away while the whole server is down.
struct GatedListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl Listener for GatedListener {
    type Io = GatedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.shared.all_down() {
                        tracing::trace!(%addr, "mock provider is down, dropping connection");
                        drop(stream);
                        continue;
                    }
                    let stream = GatedStream {
                        inner: stream,
                        killed: Arc::new(AtomicBool::new(false)),
                    };
                    return (stream, addr);
                }
                Err(err) => handle_accept_error(err).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Same policy as axum's own `TcpListener` impl: per-connection errors are harmless, anything
/// else (such as running out of file descriptors) gets a pause so the loop does not spin.
async fn handle_accept_error(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "mock provider failed to accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A TCP connection that a handler can kill: once killed, every read and write fails, so hyper
/// abandons the connection without sending the response it was handed.
struct GatedStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl GatedStream {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "MockProvider endpoint is down",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Per-connection handle given to handlers (as axum connect info) so they can kill the
/// connection they are answering on.
#[derive(Clone)]
struct Conn {
    killed: Arc<AtomicBool>,
}

impl Conn {
    /// Kills the connection; the returned response is never written.
    fn drop_unanswered(&self) -> Response {
        self.killed.store(true, Ordering::SeqCst);
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

impl Connected<IncomingStream<'_, GatedListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, GatedListener>) -> Self {
        Conn {
            killed: Arc::clone(&stream.io().killed),
        }
    }
}
