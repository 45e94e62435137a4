use oidc_auth as oidc;

#[oidc::required(claims(groups = "a", groups = "b"))]
async fn handler() {}

fn main() {}
