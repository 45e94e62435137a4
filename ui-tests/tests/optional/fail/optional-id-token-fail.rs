use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::optional(scopes = "beta")]
async fn handler(token: IdToken) -> String {
    token.sub().to_owned()
}

fn main() {}
