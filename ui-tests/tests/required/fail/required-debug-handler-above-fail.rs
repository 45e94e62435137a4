//! `#[axum::debug_handler]` above the macro checks a copy of the handler as written, to which
//! the macro then adds its guard: for a handler that takes no token, the copy takes one
//! parameter more than `debug_handler` passes it. Below the macro, `debug_handler` checks the
//! handler as the macro leaves it, and compiles.
use axum::debug_handler;
use oidc_auth as oidc;

#[debug_handler]
#[oidc::required(scopes = "admin")]
async fn above() -> &'static str {
    "above"
}

#[oidc::required(scopes = "admin")]
#[debug_handler]
async fn below() -> &'static str {
    "below"
}

fn main() {}
