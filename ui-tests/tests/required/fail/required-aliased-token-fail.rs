//! A type alias of the token, and the token in a `Result`, are the token under other names:
//! neither compiles as one of the handler's other parameters.
use oidc_auth as oidc;
use oidc_auth::{AuthRejection, IdToken};

type User = IdToken;

#[oidc::required(scopes = "admin")]
async fn aliased(user: User) -> String {
    user.sub().to_owned()
}

#[oidc::required(scopes = "admin")]
async fn in_a_result(token: IdToken, again: Result<IdToken, AuthRejection>) -> String {
    let _ = again;
    token.sub().to_owned()
}

fn main() {}
