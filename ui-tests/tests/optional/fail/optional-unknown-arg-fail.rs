use oidc_auth as oidc;

#[oidc::optional(claim(groups = "beta"))]
async fn handler(token: Option<oidc::IdToken>) -> bool {
    token.is_some()
}

fn main() {}
