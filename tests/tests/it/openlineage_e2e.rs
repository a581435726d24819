//! OpenLineage run events end to end: the real `daily` binary (and the test pipeline, for
//! failures) sends its events to a local HTTP server standing in for Marquez, and every event
//! is checked against the OpenLineage JSON schema and the schemas of its facets
//! (`tests/openlineage`, as the OpenLineage project publishes them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pipeline_tests::http_stub::{Reply, StubServer};
use pipeline_tests::{Output, Sandbox, workspace};
use serde_json::Value;

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const DATE: &str = "2026-11-20";
const API_KEY: &str = "ol-api-key-secret-4711";
const EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";

/// The OpenLineage schema and the facets' schemas, by their `$id`.
fn schemas() -> HashMap<String, Value> {
    let folder = workspace().join("tests/openlineage");
    let files = [
        "OpenLineage.json",
        "ParentRunFacet.json",
        "NominalTimeRunFacet.json",
        "ErrorMessageRunFacet.json",
        "JobTypeJobFacet.json",
    ];
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(folder.join(file)).expect("a vendored schema");
            let schema: Value = serde_json::from_str(&text).expect("a JSON schema");
            let id = schema["$id"].as_str().expect("a schema's $id").to_string();
            (id, schema)
        })
        .collect()
}

/// Checks an event against the OpenLineage schema, and each of its run and job facets against
/// the schema its `_schemaURL` names (formats included: uuid, date-time, uri).
fn assert_valid(event: &Value, schemas: &HashMap<String, Value>) {
    let registry = schemas
        .iter()
        .fold(jsonschema::Registry::new(), |registry, (id, schema)| {
            registry.add(id, schema.clone()).expect("a schema's URI")
        })
        .prepare()
        .expect("the schemas resolve");
    let validate = |instance: &Value, schema_url: &str| {
        let reference = serde_json::json!({ "$ref": schema_url });
        let validator = jsonschema::options()
            .with_registry(&registry)
            .should_validate_formats(true)
            .build(&reference)
            .unwrap_or_else(|err| panic!("cannot build a validator of {schema_url}: {err}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|err| format!("{err} at {}", err.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "not valid against {schema_url}: {errors:?}\n{instance:#}"
        );
    };
    validate(event, EVENT_SCHEMA);
    assert_eq!(
        event["schemaURL"],
        format!("{EVENT_SCHEMA}#/$defs/RunEvent")
    );
    let facets = [&event["run"]["facets"], &event["job"]["facets"]];
    for (name, facet) in facets
        .iter()
        .flat_map(|f| f.as_object().into_iter().flatten())
    {
        let url = facet["_schemaURL"].as_str().expect("a facet's _schemaURL");
        let (file, _) = url
            .split_once('#')
            .expect("a pointer into the facet's schema");
        assert!(
            schemas.contains_key(file),
            "facet `{name}` names a schema not kept here: {url}"
        );
        validate(facet, url);
    }
}

struct Marquez {
    sandbox: Sandbox,
    server: StubServer,
}

impl Marquez {
    fn new(name: &str) -> Marquez {
        Marquez {
            sandbox: Sandbox::new(name),
            server: StubServer::start(),
        }
    }

    fn run(&self, binary: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let url = self.server.url("/marquez");
        let mut env = vec![
            ("PIPELINE_OPENLINEAGE_URL", url.as_str()),
            ("PIPELINE_OPENLINEAGE_NAMESPACE", "etl"),
            ("PIPELINE_OPENLINEAGE_API_KEY", API_KEY),
        ];
        env.extend_from_slice(extra);
        let output = self.sandbox.run(binary, args, &env);
        output.assert_lacks(API_KEY);
        output
    }

    /// The events received, in order, each checked: POSTed to the lineage endpoint with the
    /// API key.
    fn events(&self) -> Vec<Value> {
        self.server
            .requests()
            .iter()
            .map(|request| {
                assert_eq!(request.method, "POST");
                assert_eq!(request.path, "/marquez/api/v1/lineage");
                assert_eq!(
                    request.header("authorization"),
                    Some(format!("Bearer {API_KEY}").as_str())
                );
                request.json()
            })
            .collect()
    }
}

/// `(event type, job name)` of each event.
fn kinds_of(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap_or("").to_string(),
                e["job"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn datasets(event: &Value, side: &str) -> Vec<(String, String)> {
    event[side]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["namespace"].as_str().unwrap_or("").to_string(),
                d["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_daily_run_sends_a_start_and_an_end_of_itself_and_of_each_task_with_its_tables() {
    let marquez = Marquez::new("openlineage_daily");
    let output = marquez.run(DAILY, &["run", "--date", DATE, "--json"], &[]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let events = marquez.events();
    let schemas = schemas();
    for event in &events {
        assert_valid(event, &schemas);
    }
    let kinds = kinds_of(&events);
    assert_eq!(kinds.first(), Some(&("START".into(), "daily".into())));
    assert_eq!(kinds.last(), Some(&("COMPLETE".into(), "daily".into())));
    let pipeline_run = &events[0]["run"]["runId"];
    assert_eq!(events[events.len() - 1]["run"]["runId"], *pipeline_run);

    // Every task that started: one START, then one COMPLETE of the same run (ABORT for the
    // event load, which finds no bus configured), a child of the pipeline's run.
    let report = output.json();
    let ran: Vec<(&str, &str)> = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["attempts"].as_u64() > Some(0))
        .map(|t| {
            let name = t["name"].as_str().expect("a name");
            let end = if t["status"] == "succeeded" {
                "COMPLETE"
            } else {
                "ABORT"
            };
            (name, end)
        })
        .collect();
    assert!(ran.len() >= 10, "{report:#}");
    assert!(ran.contains(&("load_order_events", "ABORT")), "{ran:?}");
    assert_eq!(events.len(), 2 + 2 * ran.len(), "{kinds:?}");
    for (task, end_type) in &ran {
        let job = format!("daily.{task}");
        let of_task: Vec<(usize, &Value)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["job"]["name"] == job.as_str())
            .collect();
        assert_eq!(of_task.len(), 2, "{job}: {kinds:?}");
        let ((start_at, start), (end_at, end)) = (of_task[0], of_task[1]);
        assert!(start_at < end_at);
        assert_eq!(start["eventType"], "START");
        assert_eq!(end["eventType"], *end_type, "{job}");
        assert_eq!(start["run"]["runId"], end["run"]["runId"], "{job}");
        assert_ne!(start["run"]["runId"], *pipeline_run);
        let parent = &end["run"]["facets"]["parent"];
        assert_eq!(parent["run"]["runId"], *pipeline_run, "{job}");
        assert_eq!(parent["job"]["name"], "daily");
        assert_eq!(end["job"]["namespace"], "etl");
        assert_eq!(
            end["run"]["facets"]["nominalTime"]["nominalStartTime"],
            "2026-11-20T00:00:00Z"
        );
    }

    // The order model's declared tables, named as OpenLineage names SQLite tables: the
    // absolute path of the warehouse's file is the namespace.
    let warehouse = std::path::absolute(marquez.sandbox.path(".pipeline/warehouse.db"))
        .expect("an absolute path");
    let namespace = format!("sqlite:{}", warehouse.display());
    let model = events
        .iter()
        .find(|e| e["job"]["name"] == "daily.make_order_model" && e["eventType"] == "COMPLETE")
        .expect("the order model's COMPLETE");
    let table = |name: &str| (namespace.clone(), name.to_string());
    assert_eq!(
        datasets(model, "inputs"),
        [
            table("orders"),
            table("users"),
            table("restaurants"),
            table("currency_rates")
        ]
    );
    assert_eq!(datasets(model, "outputs"), [table("order_model")]);

    // Run ids are unique across runs: a second run skips the tasks that are complete (all
    // but the event load, which tries again), and they send nothing.
    let again = marquez.run(DAILY, &["run", "--date", DATE, "--json"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let second: Vec<Value> = marquez.events().split_off(events.len());
    let expected = [("START", "daily"), ("START", "daily.load_order_events")];
    let expected = expected
        .into_iter()
        .chain([("ABORT", "daily.load_order_events"), ("COMPLETE", "daily")]);
    let expected: Vec<(String, String)> = expected
        .map(|(kind, job)| (kind.to_string(), job.to_string()))
        .collect();
    assert_eq!(kinds_of(&second), expected);
    assert_ne!(second[0]["run"]["runId"], *pipeline_run);
    for event in &second {
        assert_valid(event, &schemas);
    }

    // Test mode names no production table: it sends nothing.
    let test = marquez.run(DAILY, &["run", "--date", DATE, "--test", "--json"], &[]);
    assert_eq!(test.code, Some(0), "{}", test.stderr);
    assert_eq!(marquez.events().len(), events.len() + second.len());
}

#[test]
fn a_failed_task_sends_fail_with_its_error_and_a_flaky_endpoint_loses_nothing() {
    let marquez = Marquez::new("openlineage_failure");
    marquez.sandbox.write("fail-transform", "");
    // The endpoint fails the first two requests: each is retried.
    marquez
        .server
        .script([Reply::status(503), Reply::retry_after(0)]);
    let output = marquez.run(PIPELINE, &["run", "--date", DATE, "--json"], &[]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    let requests = marquez.server.requests().len();
    let events = marquez.events();
    let schemas = schemas();
    let mut received = std::collections::HashSet::new();
    for event in &events {
        assert_valid(event, &schemas);
        received.insert(event.to_string());
    }
    // The retried events arrived again, complete: two requests more than events.
    assert_eq!(received.len() + 2, requests);
    let kinds = kinds_of(&events);
    let fail = events
        .iter()
        .find(|e| e["job"]["name"] == "e2e-pipeline.transform" && e["eventType"] == "FAIL")
        .unwrap_or_else(|| panic!("transform's FAIL: {kinds:?}"));
    let message = fail["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(message.contains("transform failed on purpose"), "{message}");
    // `report` requires transform: it never started, so it sends nothing.
    assert!(
        !kinds.iter().any(|(_, job)| job == "e2e-pipeline.report"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last(),
        Some(&("FAIL".to_string(), "e2e-pipeline".to_string()))
    );
}

#[test]
fn an_unreachable_endpoint_neither_fails_nor_holds_up_the_run() {
    let sandbox = Sandbox::new("openlineage_unreachable");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE, "--json"],
        &[("PIPELINE_OPENLINEAGE_URL", &url)],
    );
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    output.assert_stderr_has("OpenLineage event was not delivered");
    output.assert_stderr_has("events of this run were not delivered");
}

#[test]
fn an_endpoint_that_never_answers_holds_the_run_up_only_until_the_delivery_deadline() {
    let marquez = Marquez::new("openlineage_hanging");
    marquez.server.otherwise(Reply::Hang);
    let started = Instant::now();
    let output = marquez.run(PIPELINE, &["run", "--date", DATE, "--json", "extract"], &[]);
    let took = started.elapsed();
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.task_status("extract"), "succeeded");
    // The end of the run waits 20 s for undelivered events, then gives them up.
    assert!(took < Duration::from_secs(45), "{took:?}");
    output.assert_stderr_has("OpenLineage events still unsent after 20.0s were given up");
    assert!(!marquez.server.requests().is_empty());
}

#[test]
fn openlineage_settings_without_a_url_or_with_a_bad_one_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new("openlineage_settings");
    let without_url = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE],
        &[("PIPELINE_OPENLINEAGE_API_KEY", API_KEY)],
    );
    assert_eq!(without_url.code, Some(2), "{}", without_url.stderr);
    without_url.assert_stderr_has("OpenLineage settings are given but no URL");
    without_url.assert_lacks(API_KEY);
    let secret_url = "ftp://user:hunter2-secret@lineage-host";
    let bad = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE],
        &[("OPENLINEAGE_URL", secret_url)],
    );
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    bad.assert_stderr_has("is not an http:// or https:// URL");
    bad.assert_lacks("hunter2-secret");
    assert!(!sandbox.path(".pipeline/state.db").exists());
}
