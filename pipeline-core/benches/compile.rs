//! Compile-time benchmark of the DAG check: generates crates of `#[task]`s in a given shape and
//! size, and measures `cargo check` of each with the check and with a build that skips it
//! (`PIPELINE_BENCH_SKIP_DAG_CHECK`, each mode in its own target directory), then the rebuild
//! after an edit that adds a line to one task in the middle of a 1,000-task crate.
//!
//! `cargo bench -p pipeline-core --bench compile` runs chain, fan-in and layered at 100, 1,000
//! and 5,000 tasks; `-- --shape layered --tasks 2000` one case. Crates go to
//! `target/compile-bench/`. Times are wall clock of `cargo check` for the generated crate alone
//! (its dependencies are built before the first measurement).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod shapes;

use shapes::SHAPES;

const SIZES: &[usize] = &[100, 1_000, 5_000];

fn main() {
    let root = bench_dir();
    let cases: Vec<(String, usize)> = match (shapes::flag("--shape"), shapes::flag("--tasks")) {
        (Some(shape), Some(tasks)) => vec![(shape, tasks.parse().expect("--tasks takes a number"))],
        _ => SHAPES
            .iter()
            .flat_map(|shape| SIZES.iter().map(move |n| (shape.to_string(), *n)))
            .collect(),
    };
    println!("compile-time benchmark: `cargo check` of a generated crate (wall clock)");
    println!(
        "{:<8} {:>6} {:>12} {:>14} {:>10}",
        "shape", "tasks", "with check", "without check", "check"
    );
    for (shape, tasks) in cases {
        let dir = generate(&root, &shape, tasks);
        let with = check(&dir, &root.join("target-with"), false);
        let without = check(&dir, &root.join("target-without"), true);
        println!(
            "{shape:<8} {tasks:>6} {:>10.2} s {:>12.2} s {:>8.2} s",
            with.as_secs_f64(),
            without.as_secs_f64(),
            with.as_secs_f64() - without.as_secs_f64()
        );
    }
    let dir = generate(&root, "layered", 1_000);
    check(&dir, &root.join("target-with"), false);
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).expect("the generated crate");
    let edited = source.replacen(
        "async fn t500(_ctx: &Ctx) -> Result<()> {",
        "async fn t500(_ctx: &Ctx) -> Result<()> {\n    let _edited = 1;",
        1,
    );
    std::fs::write(&lib, edited).expect("the edit");
    let rebuild = cargo_check(&dir, &root.join("target-with"), false, false);
    println!(
        "edit one task (adds a line) in layered 1000: {:.2} s",
        rebuild.as_secs_f64()
    );
    std::fs::write(&lib, source).expect("undo the edit");
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("compile-bench")
}

/// Writes the crate `<shape>_<tasks>` and returns its directory.
fn generate(root: &Path, shape: &str, tasks: usize) -> PathBuf {
    let name = format!("{}_{tasks}", shape.replace('-', "_"));
    let dir = root.join(&name);
    std::fs::create_dir_all(dir.join("src")).expect("a crate directory");
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\npipeline-core = {{ path = {:?} }}\n\n[workspace]\n",
        core.display().to_string()
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    let mut source = String::from("use pipeline_core::prelude::*;\n\n");
    for (i, deps) in shapes::dependencies(shape, tasks).into_iter().enumerate() {
        let requires: Vec<String> = deps.iter().map(|d| format!("T{d}")).collect();
        source.push_str(&format!(
            "/// Task {i}.\n#[task(requires = [{}])]\npub async fn t{i}(_ctx: &Ctx) -> Result<()> {{\n    Ok(())\n}}\n\n",
            requires.join(", ")
        ));
    }
    write_if_changed(&dir.join("src/lib.rs"), &source);
    dir
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("a generated file");
    }
}

/// `cargo check` of the crate in `dir` from scratch (its dependencies built before); its wall
/// time.
fn check(dir: &Path, target: &Path, skip: bool) -> Duration {
    cargo_check(dir, target, skip, false);
    cargo_check(dir, target, skip, true)
}

/// One `cargo check` of the crate in `dir`, after touching it when asked; its wall time.
fn cargo_check(dir: &Path, target: &Path, skip: bool, touch: bool) -> Duration {
    if touch {
        let lib = dir.join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("the generated crate");
        std::fs::write(&lib, text).expect("touch");
    }
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["check", "--quiet", "--lib"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target);
    if skip {
        command.env("PIPELINE_BENCH_SKIP_DAG_CHECK", "1");
    } else {
        command.env_remove("PIPELINE_BENCH_SKIP_DAG_CHECK");
    }
    let started = Instant::now();
    let status = command.status().expect("cargo check");
    assert!(status.success(), "cargo check failed in {}", dir.display());
    started.elapsed()
}
