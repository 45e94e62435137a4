#[doc(hidden)]
#[allow(non_camel_case_types)]
pub struct __oidc_auth_policy_admin;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_admin {
        const SCOPES: &'static [&'static ::core::primitive::str] = &["admin", "read"];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[
            ::oidc_auth::__private::ClaimRule::new(
                "groups",
                &[::oidc_auth::__private::ClaimValue::Str("admins")],
            ),
            ::oidc_auth::__private::ClaimRule::new(
                "realm_access.roles",
                &[
                    ::oidc_auth::__private::ClaimValue::Str("ops"),
                    ::oidc_auth::__private::ClaimValue::Str("sre"),
                ],
            ),
            ::oidc_auth::__private::ClaimRule::new(
                "email_verified",
                &[::oidc_auth::__private::ClaimValue::Bool(true)],
            ),
            ::oidc_auth::__private::ClaimRule::new(
                "level",
                &[::oidc_auth::__private::ClaimValue::Int(3i64)],
            ),
        ];
    }
    fn __oidc_auth_token_type<T: ::oidc_auth::__private::RequiredToken>() {}
    fn __oidc_auth_token_type_check() {
        __oidc_auth_token_type::<IdToken>()
    }
    #[allow(dead_code, clippy::extra_unused_type_parameters)]
    fn __oidc_auth_other_parameters() {
        #[allow(unused_imports)]
        use ::oidc_auth::__private::{OtherKind as _, TokenKind as _};
        ::oidc_auth::__private::other_parameter(
            (&&::core::marker::PhantomData::<State<App>>).__oidc_auth_kind(),
        );
    }
};
// handler_shape!, without actix-web:
pub async fn admin(
    ::oidc_auth::__private::Authorized(
        token,
        _,
    ): ::oidc_auth::__private::Authorized<__oidc_auth_policy_admin>,
    state: State<App>,
) -> impl IntoResponse {
    token.sub().to_owned()
}
// handler_shape!, with actix-web:
pub async fn admin(
    ::oidc_auth::__private::Guarded(
        ::oidc_auth::__private::Authorized(token, _),
        (state,),
    ): ::oidc_auth::__private::Guarded<
        ::oidc_auth::__private::Authorized<__oidc_auth_policy_admin>,
        (State<App>,),
    >,
) -> impl IntoResponse {
    token.sub().to_owned()
}
