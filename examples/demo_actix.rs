//! The actix-web demo: `cargo run --example demo_actix`. Same routes and configuration as the
//! axum demo (`cargo run --example demo`).

use actix_web::{App, HttpServer};
use oidc_auth_examples::{actix_demo, demo_addr, demo_auth, init_tracing, print_usage};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let demo = demo_auth().await?;
    let configure = actix_demo::configure(demo.auth.clone());
    let server =
        HttpServer::new(move || App::new().configure(configure.clone())).bind(demo_addr())?;
    print_usage(&server.addrs()[0].to_string(), demo.mock.as_ref());
    server.run().await?;
    Ok(())
}
