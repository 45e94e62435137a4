use oidc_auth as oidc;

#[oidc::required(scopes = ["ad\tmin"])]
async fn handler() {}

fn main() {}
