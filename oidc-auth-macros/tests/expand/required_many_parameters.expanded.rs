#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_many;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_many {
        const SCOPES: &'static [&'static str] = &[];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[];
    }
    fn __oidc_auth_token_type<T: ::oidc_auth::__private::RequiredToken>() {}
    fn __oidc_auth_token_type_check() {
        __oidc_auth_token_type::<IdToken>()
    }
};
async fn many(
    ::oidc_auth::__private::Guarded(
        ::oidc_auth::__private::Authorized(token, _),
        ((a, b, c, d, e, f, g, h, i, j, k, l), (m, n)),
    ): ::oidc_auth::__private::Guarded<
        ::oidc_auth::__private::Authorized<__oidc_auth_policy_many>,
        ((A, B, C, D, E, F, G, H, I, J, K, L), (M, N)),
    >,
) -> String {
    token.sub().to_owned()
}
