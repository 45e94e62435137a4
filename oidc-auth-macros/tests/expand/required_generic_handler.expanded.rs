#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_store;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_store {
        const SCOPES: &'static [&'static ::core::primitive::str] = &["write"];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[];
    }
    fn __oidc_auth_token_type<T: ::oidc_auth::__private::RequiredToken>() {}
    fn __oidc_auth_token_type_check() {
        __oidc_auth_token_type::<IdToken>()
    }
    #[allow(dead_code, clippy::extra_unused_type_parameters)]
    fn __oidc_auth_other_parameters<'a, T>()
    where
        T: DeserializeOwned + 'a,
    {
        #[allow(unused_imports)]
        use ::oidc_auth::__private::{OtherKind as _, TokenKind as _};
        ::oidc_auth::__private::other_parameter(
            (&&::core::marker::PhantomData::<Json<T>>).__oidc_auth_kind(),
        );
    }
};
// handler_shape!, without actix-web:
async fn store<'a, T>(
    ::oidc_auth::__private::Authorized(
        token,
        _,
    ): ::oidc_auth::__private::Authorized<__oidc_auth_policy_store>,
    body: Json<T>,
    sink: (impl Sink, u8),
) -> String
where
    T: DeserializeOwned + 'a,
{
    token.sub().to_owned()
}
// handler_shape!, with actix-web:
async fn store<'a, T>(
    ::oidc_auth::__private::Guarded(
        ::oidc_auth::__private::Authorized(token, _),
        (body, sink),
    ): ::oidc_auth::__private::Guarded<
        ::oidc_auth::__private::Authorized<__oidc_auth_policy_store>,
        (Json<T>, (impl Sink, u8)),
    >,
) -> String
where
    T: DeserializeOwned + 'a,
{
    token.sub().to_owned()
}
