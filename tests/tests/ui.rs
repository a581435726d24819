//! Compile errors of the DSL are part of its interface: each case in `ui/fail` is a mistake a
//! user makes, pinned with the exact message rustc prints (`ui/fail/*.stderr`). The toolchain
//! is pinned in `rust-toolchain.toml` so these stay stable. `TRYBUILD=overwrite` updates them.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
