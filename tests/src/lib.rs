//! Helpers shared by the test suites in `tests/`: throw-away working directories, running a
//! pipeline binary as a subprocess, and throw-away PostgreSQL databases.

pub mod container;
pub mod http_stub;
pub mod nats_server;
pub mod prometheus;
pub mod tcp_proxy;
pub mod web;

/// The order events of the event-load tests, in four versions: v2 adds a field, v3 removes
/// one, v4 retypes one.
pub mod events {
    pipeline_core::event_messages!(include_bytes!(concat!(env!("OUT_DIR"), "/events.bin"));
        /// An order event, version 1.
        OrderV1 = "test.v1.Order",
        /// Version 2: `channel` added.
        OrderV2 = "test.v2.Order",
        /// Version 3: `big` removed.
        OrderV3 = "test.v3.Order",
        /// Version 4: `id` retyped to a string (a change protobuf does not allow).
        OrderV4 = "test.v4.Order",
    );
}

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pipeline_core::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The workspace's root: where the Dockerfile, `deploy/` and `README.md` are.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test crate is in the workspace")
}

/// A name unique across parallel tests and processes.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An empty working directory, removed when dropped, with the processes spawned in it: any
/// still running then (a test failed before it stopped them) are killed, so that a failed
/// test leaves no worker behind.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: PathBuf,
    spawned: std::sync::Mutex<Vec<u32>>,
}

/// What a finished subprocess left.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics, showing stderr, unless it contains `text`.
    pub fn assert_stderr_has(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
    }

    /// Panics if `text` (a secret, say) shows anywhere in the output.
    pub fn assert_lacks(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "{secret:?} leaked:\n{}\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// The status of a task in a `--json` summary.
    pub fn task_status(&self, task: &str) -> String {
        let json = self.json();
        let tasks = json["tasks"].as_array().cloned().unwrap_or_default();
        tasks
            .iter()
            .find(|t| t["name"] == task)
            .and_then(|t| t["status"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("no task {task} in {json}"))
    }
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(unique_name(&format!("pipeline_{name}")));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Sandbox {
            dir,
            spawned: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn write(&self, file: &str, contents: &str) {
        std::fs::write(self.path(file), contents).expect("write a file in the sandbox");
    }

    pub fn remove(&self, file: &str) {
        let _ = std::fs::remove_file(self.path(file));
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap_or_default()
    }

    /// A command running `binary` in this directory, with no `PIPELINE_*` settings inherited.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command.args(args).current_dir(&self.dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("PIPELINE_") {
                command.env_remove(key);
            }
        }
        command.env("PIPELINE_LOG", "info");
        command
    }

    pub fn run(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(binary, args);
        command.envs(env.iter().copied());
        let output = command.output().expect("start the pipeline binary");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn spawn(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut command = self.command(binary, args);
        command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().expect("start the pipeline binary");
        self.spawned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(child.id());
        child
    }

    /// Waits until `file` contains `text` (a task reached a point), or panics after 30 s.
    pub fn wait_for(&self, file: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.read(file).contains(text) {
            assert!(
                Instant::now() < deadline,
                "{file} never contained {text:?}: {}",
                self.read(file)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let spawned = std::mem::take(
            &mut *self
                .spawned
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for pid in spawned {
            // Only a process still running one of this sandbox's binaries: the pid of one that
            // ended may belong to another process by now.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                String::from_utf8_lossy(&cmdline)
                    .contains(env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"))
            });
            if !ours {
                continue;
            }
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sandbox {
    /// A configuration whose state store is a SQLite file in this directory, with the given
    /// databases (`name`, URL).
    pub fn config(&self, databases: &[(&str, &str)]) -> pipeline_core::testing::Config {
        use pipeline_core::testing::{Config, Setting};
        let setting = |url: String| Setting {
            url,
            source: "the test".into(),
        };
        let mut config = Config::embedded();
        config.state = setting(format!("sqlite://{}", self.path("state.db").display()));
        for (name, url) in databases {
            config
                .databases
                .insert(name.to_string(), setting(url.to_string()));
        }
        config
    }
}

/// Runs one task through the real executor, forced, for 2026-11-26; its report. The state
/// store is the one `config` names.
pub async fn run_task(
    config: &pipeline_core::testing::Config,
    spec: pipeline_core::TaskSpec,
    test_mode: bool,
) -> pipeline_core::testing::TaskReport {
    let date = pipeline_core::date::Date::from_ymd(2026, 11, 26).expect("a date");
    run_task_on(config, spec, test_mode, date).await
}

/// [`run_task`] for another partition date: runs of different dates may run at once.
pub async fn run_task_on(
    config: &pipeline_core::testing::Config,
    spec: pipeline_core::TaskSpec,
    test_mode: bool,
    date: pipeline_core::date::Date,
) -> pipeline_core::testing::TaskReport {
    use pipeline_core::testing::{Quiet, RunOptions};
    let runner = runner_for(config, "test", vec![spec]).await;
    let mut options = RunOptions::new(date);
    options.force = true;
    options.test = test_mode;
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let mut report = runner.run(&options, &Quiet, cancel).await.expect("the run");
    report.tasks.remove(0)
}

/// A runner of the graph of `specs`, with the state store that `config` names.
pub async fn runner_for(
    config: &pipeline_core::testing::Config,
    pipeline: &str,
    specs: Vec<pipeline_core::TaskSpec>,
) -> pipeline_core::testing::Runner {
    let mut builder = pipeline_core::Dag::builder();
    for spec in specs {
        builder.task(spec);
    }
    pipeline_core::testing::Runner {
        dag: std::sync::Arc::new(builder.build().expect("a valid graph")),
        store: pipeline_core::testing::open_store(config)
            .await
            .expect("the state store"),
        config: config.clone(),
        pipeline: pipeline.into(),
        pools: Default::default(),
    }
}

/// Appends one line to a file in one write, so that lines of concurrent tasks never
/// interleave (the test pipelines' logs of what ran).
pub fn append_line(file: &str, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// Collects a spawned child's exit and output.
pub fn finish(child: Child) -> Output {
    let output = child
        .wait_with_output()
        .expect("wait for the pipeline binary");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends a signal (`INT`, `TERM`, `KILL`) to a process.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// What `psql` prints for one statement on `url` (unaligned, tuples only); panics on error.
pub fn psql(url: &str, sql: &str) -> String {
    let output = std::process::Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The server the PostgreSQL tests use: `DATABASE_URL`, or the local default.
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with `user` as its user name and no password (the test server trusts local roles).
pub fn url_as(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

/// Login roles for one test (trusted like the test server's own), dropped when it ends; drop
/// the databases that hold their objects first.
#[derive(Debug)]
pub struct PgRoles {
    pub names: Vec<String>,
}

impl PgRoles {
    /// `count` new login roles.
    pub fn new(count: usize) -> PgRoles {
        let names: Vec<String> = (0..count).map(|_| unique_name("role")).collect();
        for name in &names {
            psql(&postgres_admin_url(), &format!("CREATE ROLE {name} LOGIN"));
        }
        PgRoles { names }
    }
}

impl Drop for PgRoles {
    fn drop(&mut self) {
        for name in &self.names {
            // The test's databases are dropped by then; only the role itself is left.
            let _ = std::process::Command::new("psql")
                .args([
                    postgres_admin_url().as_str(),
                    "-qAtc",
                    &format!("DROP ROLE IF EXISTS {name}"),
                ])
                .output();
        }
    }
}

/// A PostgreSQL database of its own for one test, dropped afterwards.
#[derive(Debug)]
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// Creates the database. Panics with a clear message when no server is reachable: tests
    /// that need PostgreSQL must never pass silently without it.
    pub fn create() -> PgDatabase {
        let name = unique_name("pipeline_test");
        let admin = postgres_admin_url();
        let statement = format!("CREATE DATABASE \"{name}\"");
        on_own_runtime(async move {
            let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|err| {
                panic!("PostgreSQL is required for this test; cannot connect with DATABASE_URL ({err}). Start it or run .ci/run")
            });
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .expect("create the test database");
        });
        let url = match postgres_admin_url().rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("DATABASE_URL has no database part"),
        };
        PgDatabase { name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let admin = postgres_admin_url();
        on_own_runtime(async move {
            if let Ok(mut conn) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// Runs a future to completion on a fresh runtime in its own thread (usable from async tests).
fn on_own_runtime<F: std::future::Future<Output = ()> + Send + 'static>(future: F) {
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(future);
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// The rows of a query on a SQLite file, each as its columns' text joined by `|`.
pub async fn sqlite_rows(path: &Path, sql: &str) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the SQLite file");
    let rows = sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    rows.iter()
        .map(|row| {
            use sqlx::Row as _;
            (0..row.len())
                .map(|i| {
                    row.try_get::<String, _>(i)
                        .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap_or_else(|_| "?".into())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Runs a statement on a SQLite file: the rows it changed.
pub async fn sqlite_execute(path: &Path, sql: &str) -> u64 {
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the SQLite file");
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .rows_affected()
}

/// A stable fingerprint of every table's rows in a SQLite file.
pub async fn sqlite_checksum(path: &Path) -> String {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the SQLite file");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("list tables");
    let mut digest = String::new();
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let columns: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{}')",
            table.replace('\'', "''")
        )))
        .fetch_all(&mut conn)
        .await
        .expect("list columns");
        let row_text = columns
            .iter()
            .map(|c| format!("quote(\"{}\")", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {row_text} FROM {quoted} ORDER BY rowid"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("read a table");
        digest.push_str(&format!("{table}:{}:{};", rows.len(), rows.join("\n")));
    }
    digest
}
