use oidc_auth as oidc;

#[oidc::required(claims(groups = ["admins", ops]))]
async fn handler() {}

fn main() {}
