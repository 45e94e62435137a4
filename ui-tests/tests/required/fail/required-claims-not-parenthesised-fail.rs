use oidc_auth as oidc;

#[oidc::required(claims = "x")]
async fn handler() {}

fn main() {}
