//! Two broker instances that trust each other: `cargo run --example federation`.
//!
//! Instance A listens on `127.0.0.1:8081` and instance B on `127.0.0.1:8082` (override with
//! `OIDC_AUTH_FEDERATION_ADDRS=host:port,host:port`). Both use a built-in mock provider, sign
//! their own tokens (broker mode, state in memory) with their URL as `iss`, and list the other
//! in `OIDC_TRUSTED_ISSUERS`, so a token minted by A opens B's protected routes and the other
//! way round. The commands printed at start-up show it.

use oidc_auth_examples::federation::{CLIENT, start, subject_token};
use oidc_auth_examples::{exchange_command, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let addrs = std::env::var("OIDC_AUTH_FEDERATION_ADDRS")
        .unwrap_or_else(|_| "127.0.0.1:8081,127.0.0.1:8082".to_owned());
    let (a, b) = addrs
        .split_once(',')
        .ok_or("OIDC_AUTH_FEDERATION_ADDRS must be two addresses separated by a comma")?;
    let pair = start(a.trim(), b.trim()).await?;
    let [a, b] = &pair.urls;
    let subject = subject_token(&pair.mock);
    println!("broker A: {a}   broker B: {b}   (each trusts the other)");
    println!();
    println!("# a token minted by A (token exchange of a provider token):");
    println!("{}", exchange_command(a, CLIENT, &subject));
    println!();
    println!("# A's own token, and the same token at B: both 200");
    println!("curl -i {a}/me -H \"Authorization: Bearer $TOKEN\"");
    println!("curl -i {b}/me -H \"Authorization: Bearer $TOKEN\"");
    println!();
    println!("# the keys B fetched to verify it");
    println!("curl -s {a}/api/auth/v2/.well-known/jwks.json");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
