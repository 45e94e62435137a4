#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_ping;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_ping {
        const SCOPES: &'static [&'static ::core::primitive::str] = &[];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[];
    }
};
async fn ping(
    _: ::oidc_auth::__private::Authorized<__oidc_auth_policy_ping>,
) -> &'static str {
    "pong"
}
