use oidc::IdToken;
use oidc_auth as oidc;

struct Api;

impl Api {
    #[oidc::required(scopes = "admin")]
    async fn handler(token: IdToken) -> String {
        token.sub().to_owned()
    }
}

fn main() {}
