use oidc_auth as oidc;

#[oidc::required(scopes = ["admin", " "])]
async fn handler() {}

fn main() {}
