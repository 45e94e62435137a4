#[doc(hidden)]
#[allow(non_camel_case_types)]
struct __oidc_auth_policy_upload;
const _: () = {
    impl ::oidc_auth::__private::Policy for __oidc_auth_policy_upload {
        const SCOPES: &'static [&'static ::core::primitive::str] = &["upload"];
        const CLAIMS: &'static [::oidc_auth::__private::ClaimRule] = &[];
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
            (&&::core::marker::PhantomData::<web::Json<Upload>>).__oidc_auth_kind(),
        );
        ::oidc_auth::__private::other_parameter(
            (&&::core::marker::PhantomData::<web::Query<Q>>).__oidc_auth_kind(),
        );
    }
};
// handler_shape!, without actix-web:
async fn upload(
    ::oidc_auth::__private::Authorized(
        mut token,
        _,
    ): ::oidc_auth::__private::Authorized<__oidc_auth_policy_upload>,
    body: web::Json<Upload>,
    query: web::Query<Q>,
) -> String {
    token.sub().to_owned()
}
// handler_shape!, with actix-web:
async fn upload(
    ::oidc_auth::__private::Guarded(
        ::oidc_auth::__private::Authorized(mut token, _),
        (body, query),
    ): ::oidc_auth::__private::Guarded<
        ::oidc_auth::__private::Authorized<__oidc_auth_policy_upload>,
        (web::Json<Upload>, web::Query<Q>),
    >,
) -> String {
    token.sub().to_owned()
}
