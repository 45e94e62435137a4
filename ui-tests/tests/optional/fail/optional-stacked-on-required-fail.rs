use oidc::IdToken;
use oidc_auth as oidc;

#[oidc::optional]
#[oidc::required]
async fn handler(token: Option<IdToken>) -> String {
    format!("{}", token.is_some())
}

fn main() {}
