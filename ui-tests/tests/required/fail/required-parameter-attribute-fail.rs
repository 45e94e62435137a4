use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::required]
async fn handler(token: IdToken, #[allow(unused_variables)] query: String) -> String {
    token.sub().to_owned()
}

fn main() {}
