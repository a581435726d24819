//! The deployment files, as far as reading them tells (the container tests build and run the
//! image's `prebuilt` target; the default target compiles in a Rust image, which cannot be
//! pulled here). The Dockerfile's dependency stage needs a stand-in for every binary and
//! benchmark target, or cargo refuses the workspace; the compose file runs commands the
//! end-to-end tests run.

use pipeline_tests::workspace;

use yaml_rust2::{Yaml, YamlLoader};

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");

fn read(file: &str) -> String {
    std::fs::read_to_string(workspace().join(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The `.rs` files directly in `dir`, as paths from the workspace's root.
fn targets_in(dir: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(workspace().join(dir))
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

/// The YAML documents of a file.
fn yaml(file: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

fn json(file: &str) -> serde_json::Value {
    serde_json::from_str(&read(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The strings of a YAML list.
fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Panics unless `daily` takes every flag of `args` (`["worker", "--slots", "4", ...]`): the
/// files must not name a flag the binary has lost or never had.
fn assert_daily_takes(file: &str, args: &[String]) {
    let subcommand = args.first().unwrap_or_else(|| panic!("{file}: no command"));
    let help = std::process::Command::new(DAILY)
        .args([subcommand.as_str(), "--help"])
        .output()
        .expect("run daily --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{file}: `daily {subcommand}` has no {flag}:\n{help}"
        );
    }
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

#[test]
fn compose_runs_the_tested_topology_against_postgres() {
    let file = "deploy/compose.yaml";
    let compose = &yaml(file)[0]["services"];
    let worker = &compose["worker"];
    let args = strings(&worker["command"]);
    assert_eq!(args[0], "worker");
    assert_eq!(flag_value(&args, "--metrics-addr"), Some("0.0.0.0:9464"));
    assert_daily_takes(file, &args);
    // Longer than the default grace period (30 s): a hand-back is never cut short.
    assert_eq!(worker["stop_grace_period"].as_str(), Some("40s"));
    assert!(
        worker["environment"]["PIPELINE_STATE_URL"]
            .as_str()
            .is_some_and(|url| url.starts_with("postgres://"))
    );
    let scheduler = &compose["scheduler"];
    let args = strings(&scheduler["command"]);
    assert_eq!(args[..2], ["schedule", "--distributed"]);
    assert_daily_takes(file, &args);
    assert_eq!(scheduler["deploy"]["replicas"].as_i64(), Some(2));
    let serve = strings(&compose["serve"]["command"]);
    assert_daily_takes(file, &serve);
    assert!(!compose["serve"]["environment"]["PIPELINE_SERVE_TOKEN"].is_badvalue());
    assert_daily_takes(file, &strings(&compose["run"]["command"]));
}

/// The Deployment of `component` in a manifest, and its one container.
fn deployment<'a>(docs: &'a [Yaml], component: &str) -> (&'a Yaml, &'a Yaml) {
    let deployment = docs
        .iter()
        .find(|doc| {
            doc["kind"].as_str() == Some("Deployment")
                && doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str()
                    == Some(component)
        })
        .unwrap_or_else(|| panic!("no Deployment of the {component}"));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    (deployment, container)
}

/// A container's probes: readiness on /readyz, liveness on /healthz, at the port it serves.
fn assert_probes(file: &str, container: &Yaml) {
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{file}: {probe}");
        let port = get["port"].as_str().expect("a named port");
        let ports = container["ports"].as_vec().expect("ports");
        assert!(
            ports.iter().any(|p| p["name"].as_str() == Some(port)),
            "{file}: {probe} names the port {port}, which the container does not have"
        );
    }
}

/// Never root, and nothing written outside what is mounted.
fn assert_locked_down(file: &str, deployment: &Yaml, container: &Yaml) {
    let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true), "{file}");
    assert_eq!(pod["runAsUser"].as_i64(), Some(10001), "{file}");
    let own = &container["securityContext"];
    assert_eq!(
        own["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{file}"
    );
    assert_eq!(
        own["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{file}"
    );
}

#[test]
fn kubernetes_workers_scale_on_ready_tasks_schedulers_stand_by_and_serve_needs_its_token() {
    let file = "deploy/kubernetes/worker.yaml";
    let docs = yaml(file);
    let (worker, container) = deployment(&docs, "worker");
    let args = strings(&container["args"]);
    assert_eq!(args[0], "worker");
    assert_daily_takes(file, &args);
    assert_probes(file, container);
    assert_locked_down(file, worker, container);
    let grace: i64 = flag_value(&args, "--grace-secs")
        .and_then(|secs| secs.parse().ok())
        .expect("--grace-secs");
    let kill_after = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        kill_after > grace,
        "{file}: SIGKILL comes before the grace period ends"
    );
    assert_eq!(
        worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(),
        Some(0),
        "{file}: new workers come up before old ones stop"
    );
    let autoscaler = docs
        .iter()
        .find(|doc| doc["kind"].as_str() == Some("HorizontalPodAutoscaler"))
        .expect("the workers' autoscaler");
    assert_eq!(
        autoscaler["spec"]["scaleTargetRef"]["name"].as_str(),
        worker["metadata"]["name"].as_str()
    );
    let metric = &autoscaler["spec"]["metrics"][0]["external"]["metric"];
    assert_eq!(metric["name"].as_str(), Some("pipeline_queue_tasks"));
    assert_eq!(
        metric["selector"]["matchLabels"]["state"].as_str(),
        Some("ready")
    );

    let file = "deploy/kubernetes/scheduler.yaml";
    let docs = yaml(file);
    let (scheduler, container) = deployment(&docs, "scheduler");
    assert_eq!(scheduler["spec"]["replicas"].as_i64(), Some(2));
    let args = strings(&container["args"]);
    assert_eq!(args[..2], ["schedule", "--distributed"]);
    assert_daily_takes(file, &args);
    assert_probes(file, container);
    assert_locked_down(file, scheduler, container);

    let file = "deploy/kubernetes/serve.yaml";
    let docs = yaml(file);
    let (serve, container) = deployment(&docs, "serve");
    let args = strings(&container["args"]);
    assert_eq!(args[0], "serve");
    assert_daily_takes(file, &args);
    assert_probes(file, container);
    assert_locked_down(file, serve, container);
    let env = container["env"].as_vec().expect("env");
    let token = env
        .iter()
        .find(|var| var["name"].as_str() == Some("PIPELINE_SERVE_TOKEN"))
        .expect("serve has its token");
    assert!(
        !token["valueFrom"]["secretKeyRef"]["name"].is_badvalue(),
        "{file}: the token comes from a Secret"
    );
    let service = docs
        .iter()
        .find(|doc| doc["kind"].as_str() == Some("Service"))
        .expect("serve's Service");
    assert_eq!(
        service["spec"]["selector"],
        serve["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn ecs_task_definitions_run_the_tested_commands_as_a_non_root_user() {
    for (file, command) in [
        ("deploy/ecs/worker.json", "worker"),
        ("deploy/ecs/scheduler.json", "schedule"),
        ("deploy/ecs/serve.json", "serve"),
    ] {
        let task = json(file);
        assert_eq!(task["requiresCompatibilities"][0], "FARGATE", "{file}");
        let container = &task["containerDefinitions"][0];
        let args: Vec<String> = container["command"]
            .as_array()
            .expect("command")
            .iter()
            .filter_map(|arg| arg.as_str().map(String::from))
            .collect();
        assert_eq!(args[0], command, "{file}");
        assert_daily_takes(file, &args);
        assert_eq!(container["user"], "10001", "{file}");
        let addr = flag_value(&args, "--metrics-addr").or_else(|| flag_value(&args, "--addr"));
        let port = addr
            .and_then(|addr| addr.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u64>().ok())
            .expect("an address with a port");
        assert_eq!(
            container["portMappings"][0]["containerPort"], port,
            "{file}"
        );
        let probe = container["healthCheck"]["command"][3]
            .as_str()
            .expect("a health check");
        assert!(
            probe.contains(&format!("/dev/tcp/127.0.0.1/{port}")) && probe.contains("/readyz"),
            "{file}: {probe}"
        );
        let secrets = container["secrets"].as_array().expect("secrets");
        assert!(
            secrets.iter().any(|s| s["name"] == "PIPELINE_STATE_URL"),
            "{file}: the state store's URL is a secret"
        );
        if command == "worker" {
            // ECS's SIGKILL comes after stopTimeout: later than the default grace period.
            assert!(container["stopTimeout"].as_u64() > Some(30), "{file}");
        }
    }
}
