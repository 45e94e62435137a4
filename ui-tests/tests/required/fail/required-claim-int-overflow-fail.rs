use oidc_auth as oidc;

#[oidc::required(claims(level = 99999999999999999999))]
async fn handler() {}

fn main() {}
