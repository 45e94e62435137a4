//! Bearer token validation: parse, check the registered claims, verify the signature with the
//! provider's key, then check the route's scopes and claims.

mod cache;
mod id_token;
mod jose;
mod registered;
mod requirements;

pub use id_token::IdToken;
pub(crate) use id_token::{groups_of, roles_of};

pub(crate) use cache::{TokenCache, key as cache_key};
pub(crate) use jose::{TokenUse, parse as parse_jws, parse_for as parse_jws_for};
pub(crate) use registered::{
    Expectations, check as check_registered, check_issuer, check_not_id_token,
};
pub(crate) use requirements::{check_constraints, check_rules, check_scopes};
