//! The derive adds no inherent items: an enum's own `as_str` and `ALL` stay its own, and the
//! trait's are still there, and used by `#[oidc::required]`.
use oidc::IdToken;
use oidc_auth as oidc;

#[derive(oidc::Scopes)]
enum AppScope {
    Admin,
    #[scope("reports:read")]
    Reports,
}

impl AppScope {
    const ALL: [&'static str; 1] = ["everything"];

    fn as_str(&self) -> String {
        match self {
            AppScope::Admin => "ADMIN".to_owned(),
            AppScope::Reports => "REPORTS".to_owned(),
        }
    }
}

#[oidc::required(scopes = [AppScope::Reports])]
async fn reports(token: IdToken) -> String {
    token.sub().to_owned()
}

fn main() {
    let _ = reports;
    assert_eq!(AppScope::ALL, ["everything"]);
    assert_eq!(AppScope::Admin.as_str(), "ADMIN");
    assert_eq!(<AppScope as oidc::Scopes>::ALL, ["admin", "reports:read"]);
    assert_eq!(oidc::Scopes::as_str(&AppScope::Reports), "reports:read");
}
