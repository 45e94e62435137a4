use oidc_auth as oidc;

#[oidc::required(scopes = ["admin", "ad min"])]
async fn handler() {}

fn main() {}
