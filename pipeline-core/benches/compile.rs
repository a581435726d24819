//! Compile-time benchmark of the DAG check: generates crates of `#[task]`s in a given shape and
//! size, and measures `cargo check` of each with the check and with a build that skips it
//! (`PIPELINE_BENCH_SKIP_DAG_CHECK`, each mode in its own target directory), then the
//! incremental rebuild after an edit that adds a line to one task of a 1,000-task crate: at the
//! top, the middle and the bottom of one file, and in a crate of ten modules, by `cargo check`
//! and by `cargo build --lib` (which also generates code). `-- --edits` measures only those.
//!
//! `cargo bench -p pipeline-core --bench compile` runs chain, fan-in and layered at 100, 1,000
//! and 5,000 tasks; `-- --shape layered --tasks 2000` one case; `-- --samples 5` runs each
//! figure five times (this machine varies by ±15% between runs): every sample is printed, wall
//! clock and CPU time (cargo's and rustc's), and per size the check's cost by the medians.
//! Crates go to `target/compile-bench/`. Times are of `cargo check` for the generated crate
//! alone (its dependencies are built before the first measurement). `-- --lineage` measures
//! the lineage check: the same crate with tables declared, with and without the check
//! (`PIPELINE_BENCH_SKIP_LINEAGE_CHECK`), beside the cycle check and what declaring the tables
//! costs (`-- --lineage --tasks 1000`: one size).

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
    let samples: usize = shapes::flag("--samples")
        .map_or(1, |n| n.parse().expect("--samples takes a number"))
        .max(1);
    if std::env::args().any(|arg| arg == "--edits") {
        edits(&root, samples);
        return;
    }
    if std::env::args().any(|arg| arg == "--lineage") {
        lineage(&root, samples);
        return;
    }
    println!(
        "compile-time benchmark: `cargo check` of a generated crate, with the DAG check and \
         without it, alternated; every sample (wall clock, and the CPU time of cargo and rustc)"
    );
    println!(
        "{:<8} {:>6} {:>7} {:>24} {:>24}",
        "shape", "tasks", "sample", "with check", "without check"
    );
    for (shape, tasks) in cases {
        let dir = generate(&root, &shape, tasks);
        let (with_target, without_target) = (root.join("target-with"), root.join("target-without"));
        let (mut with, mut without) = (Vec::new(), Vec::new());
        // Alternated, so that a slow spell of the machine falls on both.
        for sample in 1..=samples {
            let a = check(&dir, &with_target, Skip::Nothing);
            let b = check(&dir, &without_target, Skip::Both);
            println!(
                "{shape:<8} {tasks:>6} {sample:>7} {:>24} {:>24}",
                a.to_string(),
                b.to_string()
            );
            with.push(a);
            without.push(b);
        }
        let (with, without) = (Cost::median(&mut with), Cost::median(&mut without));
        println!(
            "{shape:<8} {tasks:>6}  the check, by the medians: {:+.2} s wall, {:+.2} CPU-s \
             (target: at most {:.1} CPU-s, linear: 1 CPU-s per 1,000 tasks)",
            with.wall.as_secs_f64() - without.wall.as_secs_f64(),
            with.cpu.as_secs_f64() - without.cpu.as_secs_f64(),
            tasks as f64 / 1000.0
        );
    }
    lineage(&root, samples);
    edits(&root, samples);
}

/// The lineage check beside the cycle check, layered at 1,000 and 5,000 tasks: the plain crate
/// without and with the cycle check, and the same graph with tables (each task writes a table
/// of its own and reads its dependencies' tables, so every edge is a read to check), with both
/// checks. Every sample, and per size each check's cost by the medians.
fn lineage(root: &Path, samples: usize) {
    println!(
        "lineage check, layered: `cargo check` of the plain crate without checks and with the \
         cycle check; of the crate with tables declared and read along every edge, with the \
         cycle check only and with both checks"
    );
    println!(
        "{:<6} {:>7} {:>24} {:>24} {:>24} {:>24}",
        "tasks", "sample", "no check", "cycle check", "tables, cycle check", "tables, both"
    );
    let sizes: Vec<usize> = match shapes::flag("--tasks") {
        Some(tasks) => vec![tasks.parse().expect("--tasks takes a number")],
        None => vec![1_000, 5_000],
    };
    for tasks in sizes {
        let plain = generate(root, "layered", tasks);
        let tables = generate_tables(root, tasks);
        let targets = [
            "target-without",
            "target-with",
            "target-tables-unchecked",
            "target-tables",
        ]
        .map(|t| root.join(t));
        let mut costs: [Vec<Cost>; 4] = Default::default();
        for sample in 1..=samples {
            let none = check(&plain, &targets[0], Skip::Both);
            let cycle = check(&plain, &targets[1], Skip::Nothing);
            let declared = check(&tables, &targets[2], Skip::Lineage);
            let both = check(&tables, &targets[3], Skip::Nothing);
            println!(
                "{tasks:>6} {sample:>7} {:>24} {:>24} {:>24} {:>24}",
                none.to_string(),
                cycle.to_string(),
                declared.to_string(),
                both.to_string()
            );
            for (list, cost) in costs.iter_mut().zip([none, cycle, declared, both]) {
                list.push(cost);
            }
        }
        let [none, cycle, declared, both] = costs.map(|mut list| Cost::median(&mut list));
        let cpu = |cost: Cost| cost.cpu.as_secs_f64();
        println!(
            "{tasks:>6}  by the medians: the cycle check {:+.2} CPU-s; the lineage check {:+.2} \
             CPU-s ({} reads; target: at most {:.1} CPU-s each, linear: 1 CPU-s per 1,000 \
             tasks); declaring the tables (tables!, writes, reads) {:+.2} CPU-s",
            cpu(cycle) - cpu(none),
            cpu(both) - cpu(declared),
            shapes::dependencies("layered", tasks)
                .iter()
                .map(Vec::len)
                .sum::<usize>(),
            tasks as f64 / 1000.0,
            cpu(declared) - cpu(cycle),
        );
    }
}

/// The layered crate with tables as `layered_<tasks>_tables`: `tables! { pub t { t0, .. } }`,
/// task `i` writing `t::t<i>` and reading the tables of the tasks it requires.
fn generate_tables(root: &Path, tasks: usize) -> PathBuf {
    let dir = crate_dir(root, &format!("layered_{tasks}_tables"), "");
    let mut source = String::from("use pipeline_core::prelude::*;\n\ntables! {\n    pub t {\n");
    for i in 0..tasks {
        source.push_str(&format!("        t{i},\n"));
    }
    source.push_str("    }\n}\n\n");
    for (i, deps) in shapes::dependencies("layered", tasks)
        .into_iter()
        .enumerate()
    {
        let requires: Vec<String> = deps.iter().map(|d| format!("T{d}")).collect();
        let reads: Vec<String> = deps.iter().map(|d| format!("t::t{d}")).collect();
        source.push_str(&format!(
            "/// Task {i}.\n#[task(requires = [{}], reads = [{}], writes = [t::t{i}])]\n\
             pub async fn t{i}(_ctx: &Ctx) -> Result<()> {{\n    Ok(())\n}}\n\n",
            requires.join(", "),
            reads.join(", ")
        ));
    }
    write_if_changed(&dir.join("src/lib.rs"), &source);
    dir
}

/// The rebuild after an edit of one task of a 1,000-task crate, by `cargo check` and by
/// `cargo build --lib`: every sample, and the fastest.
fn edits(root: &Path, samples: usize) {
    println!("edit one task (adds a line to its body), layered 1000: the rebuild after the edit");
    println!(
        "{:<52} {:>22} {:>22}",
        "", "cargo check", "cargo build --lib"
    );
    let one_file = generate(root, "layered", 1_000);
    let modules = generate_modules(root, "layered", 1_000, 100);
    let line_tables = generate_line_tables(root, 1_000);
    let places = [
        ("one file of 1,000 tasks, the first task", &one_file, 0),
        ("the same, debug = \"line-tables-only\"", &line_tables, 0),
        ("one file of 1,000 tasks, the middle task", &one_file, 500),
        ("one file of 1,000 tasks, the last task", &one_file, 999),
        ("ten modules of 100 tasks, the sixth's first", &modules, 500),
    ];
    for (place, dir, task) in places {
        let mut figures = Vec::new();
        for verb in ["check", "build"] {
            let target = root.join(format!("target-edit-{verb}"));
            let runs: Vec<Duration> = (0..samples)
                .map(|_| edit_and_rebuild(dir, &target, task, verb))
                .collect();
            let fastest = runs.iter().min().copied().unwrap_or_default();
            let all: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.2}", r.as_secs_f64()))
                .collect();
            figures.push(format!(
                "{:.2} s ({})",
                fastest.as_secs_f64(),
                all.join("/")
            ));
        }
        println!("  {place:<50} {:>22} {:>22}", figures[0], figures[1]);
    }
}

/// Builds the crate in `dir` by `verb` (`check` or `build`), adds a line to task `task`'s body,
/// and returns the wall time of the same command after it; the edit is undone afterwards. The
/// place of the edit should matter little: below it rustc rechecks only the tasks' own
/// functions and one static each.
fn edit_and_rebuild(dir: &Path, target: &Path, task: usize, verb: &str) -> Duration {
    cargo(dir, target, Skip::Nothing, true, verb);
    let file = std::fs::read_dir(dir.join("src"))
        .expect("the generated sources")
        .map(|entry| entry.expect("a generated source").path())
        .find(|path| {
            std::fs::read_to_string(path)
                .is_ok_and(|text| text.contains(&format!("async fn t{task}(")))
        })
        .expect("the task's file");
    let source = std::fs::read_to_string(&file).expect("the generated crate");
    let signature = format!("async fn t{task}(_ctx: &Ctx) -> Result<()> {{");
    let edited = source.replacen(&signature, &format!("{signature}\n    let _edited = 1;"), 1);
    std::fs::write(&file, edited).expect("the edit");
    let rebuild = cargo(dir, target, Skip::Nothing, false, verb);
    std::fs::write(&file, source).expect("undo the edit");
    rebuild
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("compile-bench")
}

/// Writes the crate `<shape>_<tasks>`, every task in `src/lib.rs`, and returns its directory.
fn generate(root: &Path, shape: &str, tasks: usize) -> PathBuf {
    let dir = crate_dir(root, &format!("{}_{tasks}", shape.replace('-', "_")), "");
    let mut source = String::from("use pipeline_core::prelude::*;\n\n");
    for (i, deps) in shapes::dependencies(shape, tasks).into_iter().enumerate() {
        source.push_str(&task_source(i, &deps));
    }
    write_if_changed(&dir.join("src/lib.rs"), &source);
    dir
}

/// The layered one-file crate again as `layered_<tasks>_lines`, its own code built with
/// `debug = "line-tables-only"` (the README's advice for big pipeline crates; its dependencies
/// as before, so it shares their build): full debug info, Cargo's default, is most of what an
/// edit above many tasks costs, since every function below it moves.
fn generate_line_tables(root: &Path, tasks: usize) -> PathBuf {
    let source = generate(root, "layered", tasks).join("src/lib.rs");
    let name = format!("layered_{tasks}_lines");
    let profile = format!("\n[profile.dev.package.{name}]\ndebug = \"line-tables-only\"\n");
    let dir = crate_dir(root, &name, &profile);
    let source = std::fs::read_to_string(source).expect("the generated crate");
    write_if_changed(&dir.join("src/lib.rs"), &source);
    dir
}

/// Writes the crate `<shape>_<tasks>_modules`, its tasks in modules of `per_module`, and
/// returns its directory.
fn generate_modules(root: &Path, shape: &str, tasks: usize, per_module: usize) -> PathBuf {
    let dir = crate_dir(
        root,
        &format!("{}_{tasks}_modules", shape.replace('-', "_")),
        "",
    );
    let dependencies = shapes::dependencies(shape, tasks);
    let mut lib = String::new();
    for (part, chunk) in dependencies.chunks(per_module).enumerate() {
        lib.push_str(&format!("mod part{part};\npub use part{part}::*;\n"));
        let mut source = String::from(
            "#![allow(unused_imports)]\nuse super::*;\nuse pipeline_core::prelude::*;\n\n",
        );
        for (offset, deps) in chunk.iter().enumerate() {
            source.push_str(&task_source(part * per_module + offset, deps));
        }
        write_if_changed(&dir.join(format!("src/part{part}.rs")), &source);
    }
    write_if_changed(&dir.join("src/lib.rs"), &lib);
    dir
}

/// A crate directory with its manifest, depending on this `pipeline-core`, and `extra_manifest`
/// (a profile) appended.
fn crate_dir(root: &Path, name: &str, extra_manifest: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("src")).expect("a crate directory");
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\npipeline-core = {{ path = {:?} }}\n\n[workspace]\n{extra_manifest}",
        core.display().to_string()
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    dir
}

/// Task `i`, requiring the tasks `deps`.
fn task_source(i: usize, deps: &[usize]) -> String {
    let requires: Vec<String> = deps.iter().map(|d| format!("T{d}")).collect();
    format!(
        "/// Task {i}.\n#[task(requires = [{}])]\npub async fn t{i}(_ctx: &Ctx) -> Result<()> {{\n    Ok(())\n}}\n\n",
        requires.join(", ")
    )
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("a generated file");
    }
}

/// `cargo check` of the crate in `dir` from scratch: its dependencies built before, its own
/// incremental state removed; its wall time.
fn check(dir: &Path, target: &Path, skip: Skip) -> Cost {
    cargo(dir, target, skip, false, "check");
    let name = dir.file_name().expect("a crate name").to_string_lossy();
    let incremental = target.join("debug/incremental");
    for entry in std::fs::read_dir(&incremental).expect("the incremental directory") {
        let path = entry.expect("an incremental entry").path();
        if path
            .file_name()
            .is_some_and(|file| file.to_string_lossy().starts_with(&format!("{name}-")))
        {
            std::fs::remove_dir_all(&path).expect("remove the crate's incremental state");
        }
    }
    cargo_cost(dir, target, skip, true, "check")
}

/// Which compile-time checks a build leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The cycle check (and with it the lineage check, which needs its ranks).
    Both,
    /// The lineage check only.
    Lineage,
}

/// What one build took: wall clock, and the CPU time (user and system) of cargo and rustc.
#[derive(Clone, Copy, Debug)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

impl Cost {
    /// The median by wall clock.
    fn median(costs: &mut [Cost]) -> Cost {
        costs.sort_by_key(|cost| cost.wall);
        costs[costs.len() / 2]
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} s, {:.2} CPU-s",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64()
        )
    }
}

/// CPU time so far of this process's children that ended (cargo, and the rustc it waited for).
fn children_cpu() -> Duration {
    // SAFETY: `rusage` is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(got, 0, "getrusage failed");
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// One `cargo check` (or `build`: `verb`) of the crate's library in `dir`, after touching it
/// when asked; its wall time.
fn cargo(dir: &Path, target: &Path, skip: Skip, touch: bool, verb: &str) -> Duration {
    cargo_cost(dir, target, skip, touch, verb).wall
}

/// [`cargo`], with its CPU time.
fn cargo_cost(dir: &Path, target: &Path, skip: Skip, touch: bool, verb: &str) -> Cost {
    if touch {
        let lib = dir.join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("the generated crate");
        std::fs::write(&lib, text).expect("touch");
    }
    let mut command = Command::new(env!("CARGO"));
    command
        .args([verb, "--quiet", "--lib"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target);
    for (variable, skipped) in [
        ("PIPELINE_BENCH_SKIP_DAG_CHECK", skip == Skip::Both),
        ("PIPELINE_BENCH_SKIP_LINEAGE_CHECK", skip != Skip::Nothing),
    ] {
        if skipped {
            command.env(variable, "1");
        } else {
            command.env_remove(variable);
        }
    }
    let cpu = children_cpu();
    let started = Instant::now();
    let status = command.status().expect("cargo");
    assert!(status.success(), "cargo {verb} failed in {}", dir.display());
    Cost {
        wall: started.elapsed(),
        cpu: children_cpu() - cpu,
    }
}
