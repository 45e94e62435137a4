use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin = 5,
    Read,
}

#[oidc::required(scopes = [AppScope::Admin, AppScope::Read])]
async fn handler() {}

fn main() {}
