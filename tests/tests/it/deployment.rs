//! The deployment files, as far as reading them tells (the container tests build and run the
//! image's `prebuilt` target; the default target compiles in a Rust image, which cannot be
//! pulled here). The Dockerfile's dependency stage needs a stand-in for every binary and
//! benchmark target, or cargo refuses the workspace; the compose file runs commands the
//! end-to-end tests run.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The `.rs` files directly in `dir`, as paths from the workspace's root.
fn targets_in(dir: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|err| panic!("{dir}: {err}"))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(format!("{dir}/{}", path.file_name()?.to_str()?)))
        .collect();
    found.sort();
    found
}

#[test]
fn the_dockerfile_stands_in_for_every_binary_and_benchmark() {
    let dockerfile = read("Dockerfile");
    let mut missing = Vec::new();
    for dir in [
        "pipeline-core/benches",
        "pipeline-example/src/bin",
        "tests/src/bin",
        "tests/benches",
    ] {
        for target in targets_in(dir) {
            if !dockerfile.contains(&target) {
                missing.push(target);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the Dockerfile's dependency stage lacks stand-ins for {missing:?}"
    );
    for member in [
        "pipeline-macros",
        "pipeline-core",
        "pipeline-example",
        "tests",
    ] {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "{member}'s manifest is not copied"
        );
    }
}

#[test]
fn compose_runs_the_tested_commands_against_postgres() {
    let compose = read("docker-compose.yml");
    for command in [
        r#"command: ["worker", "--slots", "2", "--metrics-addr", "0.0.0.0:9464"]"#,
        r#"command: ["run", "--distributed"]"#,
        "PIPELINE_STATE_URL: postgres://",
    ] {
        assert!(
            compose.contains(command),
            "docker-compose.yml lacks {command}"
        );
    }
}
