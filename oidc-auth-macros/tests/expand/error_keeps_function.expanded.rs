async fn admin(token: IdToken) -> String {
    token.sub().to_owned()
}
::core::compile_error! {
    "`#[oidc::required]`: unknown argument `scope`; did you mean `scopes`?"
}
