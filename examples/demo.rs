//! The axum demo: `cargo run --example demo`.
//!
//! Without configuration it starts a mock OpenID provider in-process and prints `curl` commands
//! with valid tokens. Point it at a real provider with `OIDC_DISCOVERY_URL`, `OIDC_CLIENT_ID` and
//! `OIDC_AUDIENCE`; `OIDC_AUTH_DEMO_ADDR` sets the listen address (default `127.0.0.1:8080`).

use axum::serve::ListenerExt as _;
use oidc_auth_examples::{axum_demo, demo_addr, demo_auth, init_tracing, print_usage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let demo = demo_auth().await?;
    let addr = demo_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    print_usage(&listener.local_addr()?.to_string(), demo.mock.as_ref());
    // Every response leaves at once, also when a client pipelines requests: with Nagle's
    // algorithm on, a second small response would wait for the client's delayed ACK (40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, axum_demo::router(demo.auth))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
