//! A real OpenID provider for tests (cargo feature `testing`).
//!
//! [`MockProvider::start`] binds `127.0.0.1:0` and serves, on a spawned tokio task:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document ([`Endpoint::Discovery`]);
//! - `GET /jwks`: the public keys ([`Endpoint::Jwks`]).
//!
//! It mints tokens signed with its keys ([`MockProvider::token`], [`TokenBuilder`]), rotates,
//! adds and retires keys, publishes hand-written JWKs, and makes any endpoint fail on demand
//! ([`Fault`]: down, error status, garbage, truncated, slow, hanging). It counts the requests each
//! endpoint receives, so a test can assert that no call was made.
//!
//! ```
//! use oidc_auth::testing::{Endpoint, Fault, MockProvider, SigningAlg};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let provider = MockProvider::start().await?;
//!
//! // Configure the code under test with `provider.issuer()`, then hand it tokens:
//! let valid = provider.token().audience("my-api").scope("read").sign();
//! let expired = provider.token().audience("my-api").expires_in(-60).sign();
//!
//! // Key rotation: the new key signs, the old one stays published.
//! let new_kid = provider.rotate_key(SigningAlg::ES256);
//! assert_eq!(provider.current_kid(), new_kid);
//!
//! // Fault injection and request counting.
//! provider.set_fault(Endpoint::Jwks, Fault::Status(503));
//! assert_eq!(provider.hits(Endpoint::Jwks), 0);
//! # Ok(())
//! # }
//! ```

mod fault;
mod keys;
mod provider;
mod server;
mod token;

#[cfg(test)]
mod tests;

pub use fault::{Endpoint, Fault};
pub use keys::SigningAlg;
pub use provider::MockProvider;
pub use token::TokenBuilder;
