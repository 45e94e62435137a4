use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
}

#[oidc::required(scopes = [AppScope::Admin, AppScope::Admin])]
async fn handler() {}

fn main() {}
