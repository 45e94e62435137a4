use oidc_auth as oidc;

#[oidc::required(scopes = ["ad\\min"])]
async fn handler() {}

fn main() {}
