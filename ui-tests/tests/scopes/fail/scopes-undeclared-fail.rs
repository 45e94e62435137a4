use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
}

#[oidc::required(scopes = [AppScope::Admn])]
async fn handler() {}

fn main() {}
