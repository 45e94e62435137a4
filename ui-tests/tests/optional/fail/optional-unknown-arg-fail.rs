use oidc_auth as oidc;

#[oidc::optional(claim(groups = "beta"))]
async fn handler() {}

fn main() {}
