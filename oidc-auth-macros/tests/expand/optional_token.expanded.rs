#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_feed;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_feed {
        const SCOPES: &'static [&'static ::core::primitive::str] = &["beta"];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[];
    }
    fn __oidc_auth_token_type<T: ::oidc_auth::__private::OptionalToken>() {}
    fn __oidc_auth_token_type_check() {
        __oidc_auth_token_type::<Option<IdToken>>()
    }
};
async fn feed(
    ::oidc_auth::__private::MaybeAuthorized(
        token,
        _,
    ): ::oidc_auth::__private::MaybeAuthorized<__oidc_auth_policy_feed>,
) -> String {
    format!("{}", token.is_some())
}
