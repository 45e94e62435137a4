use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
async fn handler(token: IdToken, again: IdToken) -> String {
    format!("{} {}", token.sub(), again.sub())
}

fn main() {}
