use oidc_auth as oidc;

enum AppScope {
    Admin,
}

#[oidc::required(scopes = [AppScope::Admin])]
async fn handler() {}

fn main() {}
