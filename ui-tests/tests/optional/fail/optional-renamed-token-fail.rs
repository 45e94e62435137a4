//! The token under another name would be a plain extractor beside the guard, checking none of
//! the route's requirements: any valid token would reach the handler. It does not compile.
use oidc_auth as oidc;
use oidc_auth::IdToken as Token;

#[oidc::optional(scopes = "beta")]
async fn banner(token: Option<Token>) -> String {
    token.map(|t| t.sub().to_owned()).unwrap_or_default()
}

fn main() {}
