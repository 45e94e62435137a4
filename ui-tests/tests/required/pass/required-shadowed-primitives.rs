//! Items named like the primitives and traits the generated code uses (`str`, `usize`, `Fn`,
//! `Option`, `Result`) do not change what it means: it names them by absolute paths.
#![allow(non_camel_case_types, dead_code)]
use oidc_auth as oidc;
use oidc_auth::IdToken;

struct str;
struct usize;
struct Fn;
struct Option;
struct Result;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
}

#[oidc::required(scopes = [AppScope::Admin, "read"])]
async fn handler(token: IdToken) -> String {
    token.sub().to_owned()
}

#[oidc::auth_router(prefix = "/api")]
struct AuthApi;

fn main() {
    let _ = handler;
    let _ = AuthApi::configure;
}
