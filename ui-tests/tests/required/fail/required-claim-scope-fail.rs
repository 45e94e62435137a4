//! `scope` and `scp` hold the granted scopes: a claim constraint on them compares the whole
//! space-separated string (`"openid admin"` is not `"admin"`), where `scopes = ...` was meant.
use oidc_auth as oidc;

#[oidc::required(claims(scope = "admin"))]
async fn scope() {}

#[oidc::required(claims("scp" = ["read", "write"]))]
async fn scp() {}

#[oidc::optional(claims(groups = "staff", scope = "beta"))]
async fn optional(token: Option<oidc::IdToken>) -> bool {
    token.is_some()
}

fn main() {}
