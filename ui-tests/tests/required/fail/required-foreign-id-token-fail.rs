use oidc_auth as oidc;

/// Not `oidc_auth::IdToken`, only the same name.
struct IdToken;

#[oidc::required(scopes = "admin")]
async fn handler(_token: IdToken) {}

fn main() {
    let _ = IdToken;
}
