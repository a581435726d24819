//! The DSL's compile-pass cases (`ui/pass`): every key of `#[task]`, `#[check]`, `pool!` and
//! `schedule!` compiles, under strict lints too, and each binary's registry holds what its
//! source declares (each asserts that in its `main`).

use std::process::Command;

fn runs_clean(binary: &str) {
    let output = Command::new(binary)
        .output()
        .unwrap_or_else(|e| panic!("could not start {binary}: {e}"));
    assert!(
        output.status.success(),
        "{binary} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_key_of_the_dsl_compiles_into_the_graph_it_declares() {
    runs_clean(env!("CARGO_BIN_EXE_ui-full-dsl"));
}

#[test]
fn every_key_of_a_schedule_compiles_into_the_schedule_it_declares() {
    runs_clean(env!("CARGO_BIN_EXE_ui-schedules"));
}

#[test]
fn a_crate_with_strict_lints_declares_tasks_without_a_warning() {
    // Built with `#![deny(warnings, ...)]`: that it exists is the test; it runs to prove it links.
    runs_clean(env!("CARGO_BIN_EXE_ui-strict-lints"));
}
