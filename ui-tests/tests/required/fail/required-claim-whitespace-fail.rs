//! A claim name with whitespace around it, or around a segment of a dotted path, names no
//! claim a provider issues: the constraint could never hold.
use oidc_auth as oidc;

#[oidc::required(claims(" groups" = "admins"))]
async fn leading() {}

#[oidc::required(claims("realm_access.roles " = "ops"))]
async fn trailing() {}

#[oidc::optional(claims("realm_access. roles" = "ops"))]
async fn inner(token: Option<oidc::IdToken>) -> bool {
    token.is_some()
}

fn main() {}
