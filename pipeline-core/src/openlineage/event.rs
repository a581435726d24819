//! OpenLineage run events as JSON (the spec's `RunEvent`, version 2-0-2), and the names they
//! give runs and tables.
//!
//! A pipeline run is one OpenLineage run of the job `<pipeline>`; each task that runs in it is a
//! run of the job `<pipeline>.<task>` whose `parent` facet names the pipeline's run (Airflow
//! names a DAG's tasks the same way). Run ids are UUIDs (version 7) made from the run's start
//! time and a hash of the pipeline, the state store's run id and the task: the START and the
//! final event of a task carry the same id without anything kept in between.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::date::Partition;
use crate::hash::fnv1a;

/// The schema every event names.
pub(super) const EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PARENT_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const NOMINAL_TIME_FACET: &str =
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
/// Who produced an event: this library and its version.
const PRODUCER: &str = concat!("urn:pipeline:pipeline-core:", env!("CARGO_PKG_VERSION"));

/// The transition an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EventType {
    Start,
    Complete,
    Fail,
    Abort,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
            EventType::Abort => "ABORT",
        }
    }
}

/// A run of a job, as events name it.
#[derive(Clone, Debug)]
pub(super) struct RunName {
    pub run_id: String,
    pub job: String,
}

/// What one event says beyond its run and type.
pub(super) struct EventBody<'a> {
    /// `DAG` for the pipeline's run, `TASK` for a task's.
    pub job_type: &'static str,
    /// The pipeline's run, for a task's events.
    pub parent: Option<&'a RunName>,
    pub partition: Partition,
    /// Why the run failed (already redacted), for a FAIL.
    pub error: Option<&'a str>,
    pub inputs: Vec<Value>,
    pub outputs: Vec<Value>,
}

/// One event of `run` (a job of `namespace`) at `at_millis`.
pub(super) fn run_event(
    kind: EventType,
    at_millis: i64,
    namespace: &str,
    run: &RunName,
    body: EventBody<'_>,
) -> Value {
    let mut run_facets = Map::new();
    let (start, end) = (
        body.partition.start_millis_utc(),
        body.partition.end_millis_utc(),
    );
    run_facets.insert(
        "nominalTime".into(),
        facet(
            NOMINAL_TIME_FACET,
            json!({"nominalStartTime": timestamp(start), "nominalEndTime": timestamp(end)}),
        ),
    );
    if let Some(parent) = body.parent {
        let parent_ref = json!({
            "run": {"runId": parent.run_id},
            "job": {"namespace": namespace, "name": parent.job},
        });
        let mut fields = parent_ref.clone();
        fields["root"] = parent_ref;
        run_facets.insert("parent".into(), facet(PARENT_FACET, fields));
    }
    if let Some(message) = body.error {
        run_facets.insert(
            "errorMessage".into(),
            facet(
                ERROR_FACET,
                json!({"message": message, "programmingLanguage": "rust"}),
            ),
        );
    }
    json!({
        "eventType": kind.as_str(),
        "eventTime": timestamp(at_millis),
        "producer": PRODUCER,
        "schemaURL": EVENT_SCHEMA,
        "run": {"runId": run.run_id, "facets": run_facets},
        "job": {
            "namespace": namespace,
            "name": run.job,
            "facets": {
                "jobType": facet(JOB_TYPE_FACET, json!({
                    "processingType": "BATCH",
                    "integration": "PIPELINE",
                    "jobType": body.job_type,
                })),
            },
        },
        "inputs": body.inputs,
        "outputs": body.outputs,
    })
}

/// A facet: its fields with the two every facet carries.
fn facet(schema: &str, mut fields: Value) -> Value {
    if let Value::Object(map) = &mut fields {
        map.insert("_producer".into(), PRODUCER.into());
        map.insert("_schemaURL".into(), schema.into());
    }
    fields
}

/// RFC 3339 in UTC: `2026-12-07T01:02:03.456Z`.
fn timestamp(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A version 7 UUID: `millis` as its time, and a hash of `parts` as its 74 other bits.
pub(super) fn run_uuid(millis: i64, parts: &[&str]) -> String {
    let mut bytes = Vec::with_capacity(parts.iter().map(|part| part.len() + 1).sum::<usize>() + 1);
    for part in parts {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(0);
    }
    let high_hash = fnv1a(&bytes);
    bytes.push(0xff);
    let low_hash = fnv1a(&bytes);
    let millis = u64::try_from(millis).unwrap_or(0) & 0xffff_ffff_ffff;
    let high = millis << 16 | 0x7000 | (high_hash >> 52);
    let low = 0x8000_0000_0000_0000 | (low_hash & 0x3fff_ffff_ffff_ffff);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// Names of tables as datasets, by the OpenLineage naming conventions: a PostgreSQL table is
/// `<database>.<schema>.<table>` in the namespace `postgres://<host>:<port>`; a SQLite table is
/// `<table>` in `sqlite:<absolute path of the file>`; a table of a database that is not
/// configured here keeps the pipeline's name for it (`replica.orders`), in the jobs' namespace.
#[derive(Debug)]
pub(super) struct Datasets {
    /// By configured database name: the namespace and what goes before the table's name.
    databases: crate::hash::NameMap<String, (String, String)>,
    fallback_namespace: String,
}

impl Datasets {
    pub fn new(config: &Config, fallback_namespace: &str) -> Datasets {
        let databases = config
            .identities()
            .into_iter()
            .map(|(name, identity)| (name, namespace_of(&identity)))
            .collect();
        Datasets {
            databases,
            fallback_namespace: fallback_namespace.to_string(),
        }
    }

    /// The dataset of `database.table`, as the pipeline names a table.
    pub fn dataset(&self, table: &str) -> Value {
        let (database, name) = table.split_once('.').unwrap_or(("", table));
        match self.databases.get(database) {
            Some((namespace, prefix)) => {
                json!({"namespace": namespace, "name": format!("{prefix}{name}")})
            }
            None => json!({"namespace": self.fallback_namespace, "name": table}),
        }
    }
}

/// A database's namespace and table-name prefix, from its identity (`postgres://host:5432/dwh`,
/// `sqlite:/srv/etl/warehouse.db`; see [`Config::identity`]).
fn namespace_of(identity: &str) -> (String, String) {
    let postgres = identity
        .strip_prefix("postgres://")
        .or_else(|| identity.strip_prefix("postgresql://"));
    let Some(rest) = postgres else {
        return (identity.to_string(), String::new());
    };
    let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = if authority.is_empty() {
        "localhost:5432".to_string()
    } else if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:5432")
    } else {
        authority.to_string()
    };
    let database = if database.is_empty() {
        "postgres"
    } else {
        database
    };
    (
        format!("postgres://{host_port}"),
        format!("{database}.public."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_version_7_uuids_that_differ_by_task() {
        let first = run_uuid(1_765_000_000_000, &["daily", "7", "load_users"]);
        let again = run_uuid(1_765_000_000_000, &["daily", "7", "load_users"]);
        let other = run_uuid(1_765_000_000_000, &["daily", "7", "load_orders"]);
        assert_eq!(first, again);
        assert_ne!(first, other);
        let groups: Vec<&str> = first.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('7'), "version 7: {first}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "RFC 4122 variant: {first}"
        );
        // The time is the first 48 bits.
        assert_eq!(
            u64::from_str_radix(&format!("{}{}", groups[0], groups[1]), 16).ok(),
            Some(1_765_000_000_000)
        );
    }

    #[test]
    fn tables_are_named_as_openlineage_names_them() {
        assert_eq!(
            namespace_of("postgres://db-1:6432/dwh"),
            ("postgres://db-1:6432".into(), "dwh.public.".into())
        );
        assert_eq!(
            namespace_of("postgres://db-1/dwh"),
            ("postgres://db-1:5432".into(), "dwh.public.".into())
        );
        assert_eq!(
            namespace_of("postgresql://[::1]/dwh"),
            ("postgres://[::1]:5432".into(), "dwh.public.".into())
        );
        assert_eq!(
            namespace_of("sqlite:/srv/etl/warehouse.db"),
            ("sqlite:/srv/etl/warehouse.db".into(), String::new())
        );
    }

    #[test]
    fn timestamps_are_rfc_3339_in_utc() {
        assert_eq!(timestamp(1_765_000_000_123), "2025-12-06T05:46:40.123Z");
    }
}
