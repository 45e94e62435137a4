//! Compile-pass and compile-fail tests of the oidc-auth macros live in `tests/`.
