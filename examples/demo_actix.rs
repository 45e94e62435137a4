//! The actix-web demo: `cargo run --example demo_actix`. Same routes and configuration as the
//! axum demo (`cargo run --example demo`).

use actix_web::{App, HttpServer};
use oidc_auth_examples::{actix_demo, demo_addr, demo_auth, print_usage};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let demo = demo_auth().await?;
    let configure = actix_demo::configure(demo.auth.clone());
    let server =
        HttpServer::new(move || App::new().configure(configure.clone())).bind(demo_addr())?;
    print_usage(&server.addrs()[0].to_string(), demo.mock.as_ref());
    server.run().await?;
    Ok(())
}
