use oidc_auth as oidc;

#[oidc::required(scope = "admin")]
async fn handler() {}

fn main() {}
