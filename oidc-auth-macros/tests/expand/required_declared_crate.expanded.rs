#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_refund;
const _: () = {
    impl crate::deps::oidc_auth::__private::Policy for __oidc_auth_policy_refund {
        const SCOPES: &'static [&'static ::core::primitive::str] = &[
            <AppScope as crate::deps::oidc_auth::__private::DerivedScopes>::ALL[AppScope::Admin
                as ::core::primitive::usize],
            "billing:write",
        ];
        const CLAIMS: &'static [crate::deps::oidc_auth::__private::ClaimRule] = &[];
    }
    fn __oidc_auth_token_type<T: crate::deps::oidc_auth::__private::RequiredToken>() {}
    fn __oidc_auth_token_type_check() {
        __oidc_auth_token_type::<oidc::IdToken>()
    }
    #[allow(dead_code, clippy::extra_unused_type_parameters)]
    fn __oidc_auth_other_parameters() {
        #[allow(unused_imports)]
        use crate::deps::oidc_auth::__private::{OtherKind as _, TokenKind as _};
        crate::deps::oidc_auth::__private::other_parameter(
            (&&::core::marker::PhantomData::<Json<Refund>>).__oidc_auth_kind(),
        );
    }
};
// handler_shape!, without actix-web:
async fn refund(
    crate::deps::oidc_auth::__private::Authorized(
        mut token,
        _,
    ): crate::deps::oidc_auth::__private::Authorized<__oidc_auth_policy_refund>,
    body: Json<Refund>,
) -> Result<String, Error> {
    Ok(token.sub().to_owned())
}
// handler_shape!, with actix-web:
async fn refund(
    crate::deps::oidc_auth::__private::Guarded(
        crate::deps::oidc_auth::__private::Authorized(mut token, _),
        (body,),
    ): crate::deps::oidc_auth::__private::Guarded<
        crate::deps::oidc_auth::__private::Authorized<__oidc_auth_policy_refund>,
        (Json<Refund>,),
    >,
) -> Result<String, Error> {
    Ok(token.sub().to_owned())
}
