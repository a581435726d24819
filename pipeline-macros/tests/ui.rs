//! Compile errors of the DSL are part of its interface: each case in `ui/fail` is a mistake a
//! user makes, pinned with the exact message rustc prints (`ui/fail/*.stderr`). The toolchain
//! is pinned in `rust-toolchain.toml` so these stay stable. `TRYBUILD=overwrite` updates them.
//!
//! The cases live in the workspace's `tests/ui` (linked here as `tests/ui`, so rustc names them
//! by a path inside this crate, with line numbers). They run from this crate because trybuild
//! builds the dependencies of the crate that runs it, afresh: here that is the runtime without
//! its optional features, not the test crate's whole tree. The `ui/pass` cases are binaries of
//! the test crate (`it::compile_pass`), so trybuild only checks and never builds.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
