use oidc_auth as oidc;

#[oidc::required(claims("a..b" = "x"))]
async fn handler() {}

fn main() {}
