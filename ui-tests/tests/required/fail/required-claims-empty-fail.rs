use oidc_auth as oidc;

#[oidc::required(claims())]
async fn handler() {}

fn main() {}
