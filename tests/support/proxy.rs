//! A small TCP proxy for fault injection on loopback: it forwards to an upstream address and
//! can add latency, reset connections at once, cut answers after some bytes, or refuse.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Forward, but hold every chunk from upstream this long first.
    Delay(Duration),
    /// Accept, then reset the connection (RST) before any byte.
    Reset,
    /// Forward the request; pass on the answer's head (status line and headers) and this many
    /// bytes of its body, then reset: an answer cut mid-body, wherever its headers end.
    CutAfter(usize),
    /// Accept and never answer (until the client gives up).
    Blackhole,
}

/// The proxy; dropping it stops accepting.
pub struct TcpProxy {
    addr: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reset(stream: TcpStream) {
    // SO_LINGER 0: closing sends RST instead of FIN.
    let _ = stream.set_zero_linger();
    drop(stream);
}

impl TcpProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mode = Arc::new(Mutex::new(ProxyMode::Pass));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (m, a) = (mode.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(client, upstream, m.clone()));
            }
        });
        Self {
            addr,
            mode,
            accepted,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode, for new connections and for the next answer on open ones.
    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn current(mode: &Mutex<ProxyMode>) -> ProxyMode {
    *mode.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(client: TcpStream, upstream: SocketAddr, shared: Arc<Mutex<ProxyMode>>) {
    let mode = current(&shared);
    match mode {
        ProxyMode::Reset => return reset(client),
        ProxyMode::Blackhole => {
            let mut client = client;
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    // Set before splitting: when both halves are gone the close is a reset.
    let _ = client.set_zero_linger();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let cut_body = match mode {
        ProxyMode::CutAfter(bytes) => Some(bytes),
        _ => None,
    };
    // Bytes passed on so far; where the cut falls, once the head of the answer has ended.
    let mut passed = 0usize;
    let mut cut_at: Option<usize> = None;
    let mut head = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // The mode may have changed since the connection opened (a keep-alive connection).
        match current(&shared) {
            ProxyMode::Delay(delay) => tokio::time::sleep(delay).await,
            ProxyMode::Reset => break,
            ProxyMode::Blackhole => {
                // Hold the connection silently until the client gives up.
                let _ = upward.await;
                return;
            }
            ProxyMode::Pass | ProxyMode::CutAfter(_) => {}
        }
        let mut n = n;
        if let Some(body) = cut_body {
            if cut_at.is_none() {
                head.extend_from_slice(&buffer[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    cut_at = Some(end + 4 + body);
                }
            }
            if let Some(at) = cut_at {
                n = n.min(at.saturating_sub(passed));
            }
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        passed += n;
        if cut_at == Some(passed) {
            let _ = client_write.flush().await;
            upward.abort();
            drop(client_write);
            return;
        }
    }
    upward.abort();
}
