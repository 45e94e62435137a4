use oidc_auth as oidc;

#[oidc::required(claims(groups = admins))]
async fn handler() {}

fn main() {}
