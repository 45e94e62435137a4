//! The token under another name would be a plain extractor beside the guard, checking none of
//! the route's requirements: any valid token would reach the handler. It does not compile:
//! alone, the handler takes no token the macro recognises; beside the token, the parameter is
//! found to be the token by its type.
use oidc_auth as oidc;
use oidc_auth::IdToken;
use oidc_auth::IdToken as Token;

#[oidc::optional(scopes = "beta")]
async fn banner(token: Option<Token>) -> String {
    token.map(|t| t.sub().to_owned()).unwrap_or_default()
}

#[oidc::optional(scopes = "beta")]
async fn beside(token: Option<IdToken>, again: Option<Token>) -> String {
    format!("{} {}", token.is_some(), again.is_some())
}

fn main() {}
