use oidc_auth as oidc;

#[oidc::required(claims(a = 1), claims(b = 2))]
async fn handler() {}

fn main() {}
