use oidc_auth as oidc;

#[oidc::required(claims(realm_access.roles = "ops", x-hasura-role = ["a", "b"]))]
async fn handler() {}

fn main() {}
