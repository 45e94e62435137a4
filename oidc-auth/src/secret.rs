//! Wrapper types that keep secrets and identifiers apart.

use std::fmt;

/// A secret string (client secret, key material, a raw token).
///
/// `Debug` and `Display` print `***`, so a secret never reaches a log line by accident; the value
/// is read only through [`Secret::expose`]. There is no `==`: a comparison that stops at the
/// first differing byte tells an attacker how much of a guess was right, so secrets compare
/// only through [`Secret::ct_eq`], in constant time.
///
/// ```
/// use oidc_auth::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "***");
/// assert_eq!(s.expose(), "hunter2");
/// assert!(s.ct_eq("hunter2") && !s.ct_eq("hunter3"));
/// ```
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites of this method are the places a secret leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, in time that depends only on the lengths.
    pub fn ct_eq(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps the value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_newtype!(
    /// An issuer identifier (`iss`), compared exactly: no normalisation of case or trailing slash.
    ///
    /// ```
    /// use oidc_auth::Issuer;
    /// assert_ne!(Issuer::new("https://idp.example"), Issuer::new("https://idp.example/"));
    /// ```
    Issuer
);
string_newtype!(
    /// An audience value (`aud`) this server accepts.
    ///
    /// ```
    /// use oidc_auth::Audience;
    /// assert_eq!(Audience::new("api").as_str(), "api");
    /// ```
    Audience
);
string_newtype!(
    /// One OAuth scope token (RFC 6749 section 3.3), such as `admin`.
    ///
    /// ```
    /// use oidc_auth::Scope;
    /// assert_eq!(Scope::new("admin").to_string(), "admin");
    /// ```
    Scope
);
string_newtype!(
    /// A JWK key id (`kid`).
    ///
    /// ```
    /// use oidc_auth::Kid;
    /// assert_eq!(Kid::new("key-1").as_str(), "key-1");
    /// ```
    Kid
);

impl Scope {
    /// Whether the value is a valid RFC 6749 scope token: non-empty, printable ASCII except
    /// space, `"` and `\`.
    ///
    /// ```
    /// use oidc_auth::Scope;
    /// assert!(Scope::is_valid_token("admin"));
    /// assert!(!Scope::is_valid_token("ad min"));
    /// ```
    pub fn is_valid_token(value: &str) -> bool {
        !value.is_empty()
            && value
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    }
}
