//! A hand-written `Scopes` may list its scopes in another order than its variants: naming a
//! variant in `scopes = [...]` would then require another scope. Only a derived one is taken.
use oidc_auth as oidc;

enum Perm {
    Admin,
    Read,
}

impl oidc::Scopes for Perm {
    const ALL: &'static [&'static str] = &["read", "admin"];

    fn as_str(&self) -> &'static str {
        match self {
            Perm::Admin => "admin",
            Perm::Read => "read",
        }
    }
}

#[oidc::required(scopes = [Perm::Admin])]
async fn handler() {}

fn main() {
    let _ = Perm::Read;
}
