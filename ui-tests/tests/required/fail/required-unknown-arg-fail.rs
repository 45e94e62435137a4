use oidc_auth as oidc;

#[oidc::required(audience = "api")]
async fn handler() {}

fn main() {}
