//! Compile-pass and compile-fail cases of the macros, one directory per macro:
//! `tests/<macro>/pass/<macro>-<case>.rs` and `tests/<macro>/fail/<macro>-<case>-fail.rs`, each
//! failing case with the reviewed compiler output in a `.stderr` beside it.
//!
//! The messages are pinned to one compiler, so that message drift on other toolchains does not
//! fail the workspace tests. Rewrite them with `TRYBUILD=overwrite`, then review the diff.

#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "compiler messages are pinned to rustc 1.95"
)]
fn required() {
    let t = trybuild::TestCases::new();
    t.pass("tests/required/pass/*.rs");
    t.compile_fail("tests/required/fail/*.rs");
}

#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "compiler messages are pinned to rustc 1.95"
)]
fn optional() {
    let t = trybuild::TestCases::new();
    t.pass("tests/optional/pass/*.rs");
    t.compile_fail("tests/optional/fail/*.rs");
}

#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "compiler messages are pinned to rustc 1.95"
)]
fn scopes() {
    let t = trybuild::TestCases::new();
    t.pass("tests/scopes/pass/*.rs");
    t.compile_fail("tests/scopes/fail/*.rs");
}

#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "compiler messages are pinned to rustc 1.95"
)]
fn auth_router() {
    let t = trybuild::TestCases::new();
    t.pass("tests/auth_router/pass/*.rs");
    t.compile_fail("tests/auth_router/fail/*.rs");
}

/// SECURITY.md G8: `Secret` cannot be compared with `==`.
#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "compiler messages are pinned to rustc 1.95"
)]
fn secret() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/secret/fail/*.rs");
}
