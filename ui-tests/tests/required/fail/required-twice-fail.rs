use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::required(scopes = "admin")]
#[oidc::required(scopes = "read")]
async fn handler(token: IdToken) -> String {
    token.sub().to_owned()
}

fn main() {}
