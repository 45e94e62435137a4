//! A real OpenID provider for tests (cargo feature `testing`).
//!
//! [`MockProvider::start`] binds `127.0.0.1:0` and serves, on a spawned tokio task, each
//! [`Endpoint`]:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document ([`Endpoint::Discovery`]);
//! - `GET /jwks`: the public keys ([`Endpoint::Jwks`]);
//! - `GET /authorize`: logs the configured user in without a prompt and redirects back with a
//!   one-time code, `state` and `iss` ([`Endpoint::Authorize`]);
//! - `POST /token`: the `authorization_code` (with PKCE S256), `refresh_token` (rotating, with
//!   reuse detection) and device code grants, with `client_secret_basic`/`client_secret_post`
//!   when a secret is registered ([`Endpoint::Token`]);
//! - `POST /device`: device authorization, approved or denied by the test
//!   ([`Endpoint::Device`]);
//! - `GET /userinfo`: the user's claims for an access token it issued ([`Endpoint::Userinfo`]);
//! - `GET /logout`: end session, redirecting to `post_logout_redirect_uri`
//!   ([`Endpoint::EndSession`]);
//! - `POST /revoke`: token revocation (RFC 7009), which revokes a refresh token's family
//!   ([`Endpoint::Revocation`]).
//!
//! It mints tokens signed with its keys ([`MockProvider::token`], [`TokenBuilder`]), rotates,
//! adds and retires keys, publishes hand-written JWKs, and makes any endpoint fail on demand
//! ([`Fault`]: down, error status, garbage, truncated, slow, hanging). It counts the requests each
//! endpoint receives, so a test can assert that no call was made, and records the last
//! authorization, token and end-session requests. Switches such as
//! [`MockProvider::set_check_pkce`], [`MockProvider::set_id_token_tweak`] and
//! [`MockProvider::set_authorize_response_tweak`] make it misbehave the way attackers and broken
//! providers do.
//!
//! ```
//! use oidc_auth::testing::{Endpoint, Fault, MockProvider, SigningAlg};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let provider = MockProvider::start().await?;
//!
//! // Configure the code under test with `provider.discovery_url()` (the `OidcConfig`
//! // discovery URL), then hand it tokens:
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
//!
//! // The login flows: who logs in, which client, and what the provider checks.
//! provider.set_user("bob", serde_json::json!({"preferred_username": "bob"}));
//! provider.set_client("my-app", Some("s3cret"));
//! provider.set_device_interval(Some(0));
//! assert_eq!(provider.hits(Endpoint::Token), 0);
//! # Ok(())
//! # }
//! ```

mod controls;
mod fault;
mod flows;
mod grants;
mod keys;
mod op;
mod provider;
mod server;
mod token;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_device;
#[cfg(test)]
mod tests_flows;

pub use fault::{Endpoint, Fault};
pub use keys::SigningAlg;
pub use op::{JsonTweak, QueryTweak};
pub use provider::MockProvider;
pub use token::TokenBuilder;
