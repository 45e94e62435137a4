use oidc_auth as oidc;

#[oidc::required(claims(level = 1.5))]
async fn handler() {}

fn main() {}
