use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn handler(token: Option<IdToken>) -> bool {
    token.is_some()
}

fn main() {}
