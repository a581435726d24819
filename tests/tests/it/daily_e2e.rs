//! The real `daily` binary as a subprocess, in a fresh directory: the embedded default, resume,
//! test mode, backfill, and its errors.

use pipeline_tests::{PgDatabase, PgRoles, Sandbox, psql, sqlite_checksum, sqlite_rows};

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");

#[test]
fn runs_on_a_fresh_machine_and_skips_what_is_complete() {
    let sandbox = Sandbox::new("daily");
    let first = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let json = first.json();
    assert_eq!(json["status"], "succeeded");
    assert!(
        !first.stderr.contains("failed"),
        "the first run on a fresh machine is all green: {}",
        first.stderr
    );
    let tasks = json["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 10, "8 tasks and 2 checks");
    for task in tasks {
        if task["name"] == "load_order_events" {
            // No bus on a fresh machine: not a failure, but not configured, saying how.
            assert_eq!(task["status"], "not_configured", "{task}");
            assert!(
                task["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("PIPELINE_NATS_URL")),
                "{task}"
            );
            continue;
        }
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(task["attempts"], 1, "{task}");
        assert!(task["duration_ms"].is_u64(), "{task}");
    }
    // Dependencies come before dependents in the summary.
    let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
    let position = |name| {
        names
            .iter()
            .position(|n| *n == name)
            .expect("task in summary")
    };
    assert!(position("load[orders]") < position("make_order_model"));
    assert!(position("make_order_model") < position("make_management_report"));
    assert!(sandbox.path(".pipeline/warehouse.db").exists());
    assert!(sandbox.path(".pipeline/demo_replica.db").exists());

    let second = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &[]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    for task in second.json()["tasks"].as_array().expect("tasks") {
        // What did not run tries again (and still finds no bus).
        let expected = if task["name"] == "load_order_events" {
            "not_configured"
        } else {
            "skipped"
        };
        assert_eq!(task["status"], expected, "{task}");
    }

    let human = sandbox.run(DAILY, &["--date", "2026-11-20"], &[]);
    assert_eq!(human.code, Some(0), "{}", human.stderr);
    assert!(
        human.stdout.contains("TASK") && human.stdout.contains("9 skipped, 1 not_configured"),
        "{}",
        human.stdout
    );

    let history = sandbox.run(DAILY, &["history"], &[]);
    assert_eq!(history.stdout.lines().count(), 4, "{}", history.stdout);
    let status = sandbox.run(DAILY, &["status", "--date", "2026-11-20"], &[]);
    assert_eq!(
        status.stdout.matches("complete").count(),
        9,
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("passed: orders has 0 duplicated keys"),
        "{}",
        status.stdout
    );
}

#[tokio::test]
async fn test_mode_never_touches_production_tables() {
    let sandbox = Sandbox::new("daily_test_mode");
    let production = sandbox.run(DAILY, &["run", "--date", "2026-11-20"], &[]);
    assert_eq!(production.code, Some(0), "{}", production.stderr);
    let warehouse = sandbox.path(".pipeline/warehouse.db");
    let before = sqlite_checksum(&warehouse).await;
    assert!(
        before.contains("management_report:"),
        "the production run built the report"
    );

    let test = sandbox.run(
        DAILY,
        &["run", "--date", "2026-11-21", "--test", "--json"],
        &[],
    );
    assert_eq!(test.code, Some(0), "{}", test.stderr);
    assert_eq!(test.json()["test"], true);
    test.assert_stderr_has("test mode");
    // The whole pipeline ran (test markers are separate from production ones)...
    assert_eq!(test.task_status("make_management_report"), "succeeded");
    // ...into the test file, not the production one.
    assert_eq!(sqlite_checksum(&warehouse).await, before);
    let test_file = sandbox.path(".pipeline/warehouse.test.db");
    assert!(
        sqlite_checksum(&test_file)
            .await
            .contains("management_report:")
    );

    // Production markers of the date were not written by the test run.
    let production_again = sandbox.run(DAILY, &["run", "--date", "2026-11-21", "--json"], &[]);
    assert_eq!(
        production_again.task_status("make_management_report"),
        "succeeded"
    );
}

/// `daily test TASK`, as `airflow tasks test`: the task alone, in test mode, every time.
#[tokio::test]
async fn test_runs_one_task_in_test_mode_every_time_and_says_so() {
    let sandbox = Sandbox::new("daily_test_command");
    let production = sandbox.run(DAILY, &["run", "--date", "2026-11-20"], &[]);
    assert_eq!(production.code, Some(0), "{}", production.stderr);
    let warehouse = sandbox.path(".pipeline/warehouse.db");
    let before = sqlite_checksum(&warehouse).await;
    for _ in 0..2 {
        let test = sandbox.run(
            DAILY,
            &["test", "load[users]", "--date", "2026-11-20", "--json"],
            &[],
        );
        assert_eq!(test.code, Some(0), "{}", test.stderr);
        test.assert_stderr_has("runs load[users] once in test mode, even if complete");
        test.assert_stderr_has("dependencies taken as done");
        let json = test.json();
        assert_eq!(
            (json["test"].clone(), json["unit"].clone()),
            (true.into(), true.into())
        );
        let tasks = json["tasks"].as_array().expect("tasks");
        assert_eq!(tasks.len(), 1, "{json}");
        // Run again the second time too: completion does not skip it.
        assert_eq!(test.task_status("load[users]"), "succeeded");
    }
    assert_eq!(sqlite_checksum(&warehouse).await, before);
    assert!(
        sqlite_checksum(&sandbox.path(".pipeline/warehouse.test.db"))
            .await
            .contains("users:")
    );
    let none = sandbox.run(DAILY, &["test"], &[]);
    assert_eq!(none.code, Some(2), "{}", none.stderr);
    let unknown = sandbox.run(DAILY, &["test", "load_user"], &[]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    unknown.assert_stderr_has("did you mean");
}

#[test]
fn backfill_runs_each_date_and_resumes() {
    let sandbox = Sandbox::new("daily_backfill");
    let args = [
        "backfill",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--json",
    ];
    let first = sandbox.run(DAILY, &args, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let json = first.json();
    let runs = json["runs"].as_array().expect("runs");
    let dates: Vec<&str> = runs.iter().filter_map(|r| r["date"].as_str()).collect();
    assert_eq!(dates, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    let again = sandbox.run(DAILY, &args, &[]);
    for run in again.json()["runs"].as_array().expect("runs") {
        assert!(
            run["tasks"]
                .as_array()
                .expect("tasks")
                .iter()
                .all(|t| t["status"] == "skipped" || t["name"] == "load_order_events"),
            "{run}"
        );
    }
    let reversed = sandbox.run(
        DAILY,
        &["backfill", "--from", "2026-11-03", "--to", "2026-11-01"],
        &[],
    );
    assert_eq!(reversed.code, Some(2), "{}", reversed.stderr);
}

#[test]
fn usage_and_configuration_errors_exit_2_with_a_clear_message() {
    let sandbox = Sandbox::new("daily_errors");
    let typo = sandbox.run(DAILY, &["run", "make_order_mode"], &[]);
    assert_eq!(typo.code, Some(2));
    typo.assert_stderr_has("did you mean `make_order_model`?");

    let bad_date = sandbox.run(DAILY, &["run", "--date", "2026-02-30"], &[]);
    assert_eq!(bad_date.code, Some(2));
    bad_date.assert_stderr_has("YYYY-MM-DD");

    sandbox.write(
        "pipeline.toml",
        "[state]\nurl = \"postgres://etl:hunter2@127.0.0.1:1/state\"\n[databases\n",
    );
    let malformed = sandbox.run(DAILY, &["run"], &[]);
    assert_eq!(malformed.code, Some(2));
    malformed.assert_stderr_has("pipeline.toml is not valid");
    malformed.assert_lacks("hunter2");

    sandbox.write(
        "pipeline.toml",
        "[state]\nurl = \"postgres://etl:hunter2@127.0.0.1:1/state\"\n",
    );
    let unreachable = sandbox.run(DAILY, &["run"], &[]);
    assert_eq!(unreachable.code, Some(2));
    unreachable.assert_stderr_has("pipeline.toml [state] url");
    unreachable.assert_stderr_has("etl:***@");
    unreachable.assert_lacks("hunter2");
    assert!(!unreachable.stdout.contains("hunter2"));
}

#[test]
fn keeps_its_state_in_postgres_when_configured() {
    let database = PgDatabase::create();
    let sandbox = Sandbox::new("daily_pg_state");
    let env = [("PIPELINE_STATE_URL", database.url.as_str())];
    let first = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &env);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.task_status("make_management_report"), "succeeded");
    assert!(
        !sandbox.path(".pipeline/state.db").exists(),
        "no SQLite state when Postgres is configured"
    );
    let second = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &env);
    assert_eq!(second.task_status("make_management_report"), "skipped");
    let history = sandbox.run(DAILY, &["history"], &env);
    assert_eq!(history.stdout.lines().count(), 3, "{}", history.stdout);
}

/// A role allowed one connection keeps the state of a run; when that one is taken, the run
/// fails at once, saying why, instead of waiting for a connection it can never get.
#[test]
fn keeps_its_state_with_a_role_limited_to_one_connection() {
    let roles = PgRoles::new(1);
    let role = &roles.names[0];
    let database = PgDatabase::create();
    psql(
        &database.url,
        &format!(
            "ALTER ROLE {role} CONNECTION LIMIT 1; ALTER DATABASE \"{}\" OWNER TO {role}; GRANT CREATE ON SCHEMA public TO {role}",
            database.name
        ),
    );
    let url = pipeline_tests::url_as(&database.url, role);
    let sandbox = Sandbox::new("daily_pg_one_connection");
    let env = [("PIPELINE_STATE_URL", url.as_str())];
    let started = std::time::Instant::now();
    let first = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &env);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.task_status("make_management_report"), "succeeded");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "no wait for a connection: {:?}",
        started.elapsed()
    );
    let second = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &env);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(second.task_status("make_management_report"), "skipped");

    // Another session holds the one connection: a clear error, at once.
    let mut holder = std::process::Command::new("psql")
        .args([url.as_str(), "-qAtc", "SELECT pg_sleep(30)"])
        .spawn()
        .expect("psql");
    let busy = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        psql(
            &database.url,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"),
        ) == "1"
    });
    assert!(busy, "the holder connected");
    let started = std::time::Instant::now();
    let refused = sandbox.run(DAILY, &["run", "--date", "2026-11-21"], &env);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    refused.assert_stderr_has("cannot open the state store");
    refused.assert_stderr_has(&format!("too many connections for role \"{role}\""));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once: {:?}",
        started.elapsed()
    );
}

/// A replica and a warehouse on PostgreSQL, with the example's tables in the replica.
struct PgPipeline {
    replica: PgDatabase,
    warehouse: PgDatabase,
}

impl PgPipeline {
    fn new(orders: i64) -> PgPipeline {
        let pipeline = PgPipeline {
            replica: PgDatabase::create(),
            warehouse: PgDatabase::create(),
        };
        pipeline.replica(&format!(
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, created_at DATE NOT NULL);
             INSERT INTO users SELECT i, 'user ' || i, (ARRAY['Berlin','Oslo','Tallinn'])[1 + i % 3], DATE '2026-01-01' + i % 300
                FROM generate_series(1, 500) AS i;
             CREATE TABLE restaurants (id BIGINT PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
             INSERT INTO restaurants SELECT i, 'restaurant ' || i, (ARRAY['Berlin','Oslo','Tallinn'])[1 + i % 3]
                FROM generate_series(1, 50) AS i;
             CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, restaurant_id BIGINT NOT NULL,
                amount NUMERIC(10,2) NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
             INSERT INTO orders (user_id, restaurant_id, amount, currency, status, created_at)
                SELECT 1 + i % 500, 1 + i % 50, 5 + (i % 100), (ARRAY['EUR','SEK','NOK'])[1 + i % 3],
                       CASE WHEN i % 17 = 0 THEN 'cancelled' ELSE 'delivered' END,
                       TIMESTAMPTZ '2026-11-01' + (i % 30) * INTERVAL '1 day'
                FROM generate_series(1, {orders}) AS i;"
        ));
        pipeline
    }

    fn replica(&self, sql: &str) {
        psql(&self.replica.url, sql);
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("PIPELINE_DB_REPLICA_URL", self.replica.url.as_str()),
            ("PIPELINE_DB_WAREHOUSE_URL", self.warehouse.url.as_str()),
        ]
    }

    fn warehouse(&self, sql: &str) -> String {
        psql(&self.warehouse.url, sql)
    }
}

#[test]
fn runs_against_postgres_incrementally_and_in_test_mode() {
    let pg = PgPipeline::new(5_000);
    let sandbox = Sandbox::new("daily_pg");
    let env = pg.env();
    let first = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &env);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let orders = first.json()["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "load[orders]").cloned())
        .expect("orders");
    assert!(
        orders["details"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("orders: first load, 5000 rows"),
        "{orders}"
    );
    assert_eq!(pg.warehouse("SELECT count(*) FROM orders"), "5000");
    assert_ne!(pg.warehouse("SELECT count(*) FROM management_report"), "0");

    pg.replica("INSERT INTO orders (user_id, restaurant_id, amount, currency, status, created_at) SELECT 1, 1, 9.5, 'EUR', 'delivered', now() FROM generate_series(1, 10)");
    let next = sandbox.run(DAILY, &["run", "--date", "2026-11-21", "--json"], &env);
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    let orders = next.json()["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "load[orders]").cloned())
        .expect("orders");
    assert!(
        orders["details"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("orders: incremental, 10 rows"),
        "{orders}"
    );
    assert_eq!(pg.warehouse("SELECT count(*) FROM orders"), "5010");

    let checksum = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT * FROM public.management_report) t";
    let before = (
        pg.warehouse(checksum),
        pg.warehouse("SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM public.orders o"),
    );
    pg.replica("INSERT INTO orders (user_id, restaurant_id, amount, currency, status, created_at) SELECT 2, 2, 1, 'EUR', 'delivered', now() FROM generate_series(1, 10)");
    let test = sandbox.run(
        DAILY,
        &["run", "--date", "2026-11-22", "--test", "--json"],
        &env,
    );
    assert_eq!(test.code, Some(0), "{}", test.stderr);
    assert_eq!(
        (
            pg.warehouse(checksum),
            pg.warehouse("SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM public.orders o")
        ),
        before
    );
    assert_eq!(
        pg.warehouse("SELECT count(*) FROM pipeline_test.orders"),
        "5020"
    );
}

#[test]
fn a_load_killed_midway_leaves_the_old_table_and_the_next_run_completes() {
    let pg = PgPipeline::new(300_000);
    let sandbox = Sandbox::new("daily_kill");
    let env = pg.env();
    let first = sandbox.run(DAILY, &["run", "load", "--date", "2026-11-20"], &env);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    // A schema change makes the next load a full rebuild through a staging table.
    pg.replica("ALTER TABLE orders ADD COLUMN note TEXT DEFAULT 'x'; INSERT INTO orders (user_id, restaurant_id, amount, currency, status, created_at) SELECT 1 + i % 500, 1, 1, 'EUR', 'delivered', now() FROM generate_series(1, 700000) AS i");
    let mut victim = sandbox.spawn(
        DAILY,
        &["run", "load[orders]", "--date", "2026-11-21"],
        &env,
    );
    let staging = "SELECT count(*) FROM pg_class WHERE relname LIKE 'orders%__pl_stage_%'";
    // The staging table is the load's own until its swap commits: no other session sees it.
    // Its COPY does show.
    let copying = "SELECT count(*) FROM pg_stat_activity \
                   WHERE query LIKE 'COPY %orders%__pl_stage_%FROM STDIN%'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg.warehouse(copying) == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy into the staging table never started"
        );
        assert_eq!(pg.warehouse(staging), "0", "a staging table others can see");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    pipeline_tests::signal(&victim, "KILL");
    let _ = victim.wait();
    assert_eq!(
        pg.warehouse(staging),
        "0",
        "killed, it left no staging table"
    );
    assert_eq!(
        pg.warehouse("SELECT count(*) FROM orders"),
        "300000",
        "the old table is intact and readable"
    );

    let next = sandbox.run(
        DAILY,
        &["run", "load[orders]", "--date", "2026-11-21", "--json"],
        &env,
    );
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    assert_eq!(pg.warehouse("SELECT count(*) FROM orders"), "1000000");
    assert_eq!(pg.warehouse(staging), "0", "no staging leftovers");
}

#[test]
fn sigterm_at_any_stage_of_a_load_ends_the_process_and_frees_the_date() {
    let staging = "SELECT count(*) FROM pg_class WHERE relname LIKE 'orders%__pl_stage_%'";
    let pg = PgPipeline::new(200_000);
    let sandbox = Sandbox::new("daily_term");
    let env = pg.env();
    let first = sandbox.run(DAILY, &["run", "load", "--date", "2026-11-20"], &env);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    // From just started to swapping: each trial's schema change makes its load a rebuild.
    for (trial, delay_ms) in [0u64, 30, 80, 150, 250, 400, 600, 900]
        .into_iter()
        .enumerate()
    {
        pg.replica(&format!("ALTER TABLE orders ADD COLUMN c{trial} INT"));
        let mut child = sandbox.spawn(
            DAILY,
            &["run", "load[orders]", "--date", "2026-11-21", "--force"],
            &env,
        );
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        pipeline_tests::signal(&child, "TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                pipeline_tests::signal(&child, "KILL");
                let output = pipeline_tests::finish(child);
                panic!("trial {trial}: hung after SIGTERM: {}", output.stderr);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let output = pipeline_tests::finish(child);
        // Before its handlers are in place (right at exec), the signal ends it as usual.
        let before_start = std::os::unix::process::ExitStatusExt::signal(&status) == Some(15);
        assert!(
            matches!(status.code(), Some(0 | 130)) || before_start,
            "trial {trial} ({delay_ms} ms): {status:?} {}",
            output.stderr
        );
        assert_eq!(
            pg.warehouse("SELECT count(*) FROM orders"),
            "200000",
            "trial {trial}: the table is whole"
        );
        assert_eq!(
            pg.warehouse(staging),
            "0",
            "trial {trial} ({delay_ms} ms): the cancelled load left its staging table"
        );
    }
    let next = sandbox.run(
        DAILY,
        &["run", "load[orders]", "--date", "2026-11-21", "--force"],
        &env,
    );
    assert_eq!(next.code, Some(0), "the date is free: {}", next.stderr);
    assert_eq!(pg.warehouse(staging), "0", "no staging leftovers");
}

#[test]
fn lists_its_tasks_and_draws_its_graph() {
    let sandbox = Sandbox::new("daily_list");
    let list = sandbox.run(DAILY, &["list"], &[]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let header = list.stdout.lines().next().unwrap_or("");
    assert!(
        header.starts_with("TASK") && header.contains("REQUIRES") && header.contains("DESCRIPTION"),
        "{header}"
    );
    let model = list
        .stdout
        .lines()
        .find(|l| l.starts_with("make_order_model "))
        .expect("the model is listed");
    assert!(
        model.contains("load[orders]")
            && model.contains("load_currency")
            && model.contains("Delivered orders"),
        "{model}"
    );
    assert!(
        list.stdout.contains("load_currency (non-critical)"),
        "{}",
        list.stdout
    );
    for marked in [
        "orders_have_unique_ids (check, error, blocking)",
        "report_is_not_empty (check, warn)",
    ] {
        assert!(list.stdout.contains(marked), "{marked}: {}", list.stdout);
    }

    let mermaid = sandbox.run(DAILY, &["graph", "--format", "mermaid"], &[]);
    assert_eq!(mermaid.code, Some(0), "{}", mermaid.stderr);
    assert!(
        mermaid.stdout.starts_with("flowchart LR\n")
            && mermaid.stdout.contains("[\"load[orders]\"]"),
        "{}",
        mermaid.stdout
    );
    assert!(
        mermaid.stdout.contains(" -.-> "),
        "the soft dependency on the rates is dashed"
    );
    assert!(
        mermaid.stdout.contains("{{\"orders_have_unique_ids\"}}")
            && mermaid.stdout.contains("classDef optional"),
        "checks are hexagons, optional tasks dashed: {}",
        mermaid.stdout
    );
    let dot = sandbox.run(DAILY, &["graph"], &[]);
    assert!(
        dot.stdout
            .contains("\"report_is_not_empty\" [shape=hexagon, style=dashed];"),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout.starts_with("digraph pipeline {")
            && dot
                .stdout
                .contains("\"load[orders]\" -> \"orders_have_unique_ids\";"),
        "{}",
        dot.stdout
    );
    assert!(
        !sandbox.path(".pipeline").exists(),
        "listing touches no database"
    );
}

/// Each crontab line's `--date` runs the partition the scheduler would: the day before for the
/// nightly schedule, the hour that just ended for the hourly one.
#[test]
fn the_crontab_runs_each_schedule_for_its_own_partition() {
    let sandbox = Sandbox::new("daily_crontab");
    let crontab = sandbox.run(DAILY, &["schedules", "--crontab"], &[]);
    assert_eq!(crontab.code, Some(0), "{}", crontab.stderr);
    let line_of = |schedule: &str| {
        let lines: Vec<&str> = crontab.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("# {schedule}:")))
            .unwrap_or_else(|| panic!("{schedule} in {}", crontab.stdout));
        lines[at + 2].to_string()
    };
    // The shell evaluates the line's `--date` argument as cron would (cron turns `\%` into `%`).
    let partition_of = |line: &str| {
        let (_, argument) = line.split_once("--date ").expect("a --date argument");
        let script = format!("echo {}", argument.replace("\\%", "%"));
        let output = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let nightly = partition_of(&line_of("nightly"));
    assert!(
        nightly.len() == 10 && nightly.parse::<pipeline_core::date::Date>().is_ok(),
        "the nightly schedule runs a day: {nightly:?}"
    );
    let hourly_line = line_of("hourly_orders");
    let hourly = partition_of(&hourly_line);
    let utc_hour_ago = std::process::Command::new("date")
        .args(["-u", "-d", "1 hour ago", "+%FT%H"])
        .output()
        .expect("date runs");
    assert_eq!(
        hourly,
        String::from_utf8_lossy(&utc_hour_ago.stdout).trim(),
        "the hourly schedule runs the UTC hour that just ended: {hourly_line}"
    );
}

#[test]
fn the_replica_pool_bounds_the_loads_and_its_size_is_configurable() {
    let sandbox = Sandbox::new("daily_pools");
    let listed = sandbox.run(DAILY, &["list"], &[]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert_eq!(
        listed.stdout.matches("[pool replica]").count(),
        3,
        "{}",
        listed.stdout
    );

    // One slot for three loads that are ready at once: two of them wait, and say so.
    let one_slot = sandbox.run(
        DAILY,
        &["run", "--date", "2026-11-20", "--json"],
        &[("PIPELINE_POOL_REPLICA", "1")],
    );
    assert_eq!(one_slot.code, Some(0), "{}", one_slot.stderr);
    let json = one_slot.json();
    let waited: Vec<&serde_json::Value> = json["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|task| task["waited_ms"].as_u64().is_some_and(|ms| ms > 0))
        .collect();
    let names: Vec<&str> = waited.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names.len(),
        2,
        "two loads waited for the one slot: {names:?}"
    );
    assert!(
        names.iter().all(|name| name.starts_with("load[")),
        "{names:?}"
    );

    let human = sandbox.run(
        DAILY,
        &["run", "--date", "2026-11-21"],
        &[("PIPELINE_POOL_REPLICA", "1")],
    );
    assert_eq!(human.code, Some(0), "{}", human.stderr);
    assert!(
        human.stdout.contains("waiting for its pool") && human.stdout.contains("2 task(s) waited"),
        "{}",
        human.stdout
    );

    sandbox.write("pipeline.toml", "[pools]\nreplcia = 4\n");
    let typo = sandbox.run(DAILY, &["run"], &[]);
    assert_eq!(typo.code, Some(2), "{}", typo.stderr);
    typo.assert_stderr_has(
        "[pools] sets `replcia`, which no `pool!` declares; its pools are: replica",
    );
}

#[tokio::test]
async fn hours_are_partitions_of_their_own_in_run_backfill_and_status() {
    let sandbox = Sandbox::new("daily_hours");
    let backfill = sandbox.run(
        DAILY,
        &[
            "backfill",
            "--from",
            "2026-11-05T22",
            "--to",
            "2026-11-06T01",
            "count_orders_by_city",
            "--json",
        ],
        &[],
    );
    assert_eq!(backfill.code, Some(0), "{}", backfill.stderr);
    let json = backfill.json();
    let runs = json["runs"].as_array().expect("runs");
    let partitions: Vec<&str> = runs.iter().filter_map(|run| run["date"].as_str()).collect();
    assert_eq!(
        partitions,
        [
            "2026-11-05T22",
            "2026-11-05T23",
            "2026-11-06T00",
            "2026-11-06T01"
        ],
        "four hours, across midnight"
    );
    assert!(
        runs.iter().all(|run| run["status"] == "succeeded"),
        "{json}"
    );

    // Each hour holds the orders of that hour alone, and the hour is complete on its own.
    let counted = pipeline_tests::sqlite_rows(
        &sandbox.path(".pipeline/warehouse.db"),
        "SELECT period, sum(orders) FROM orders_by_city GROUP BY period ORDER BY period",
    )
    .await;
    let replica = pipeline_tests::sqlite_rows(
        &sandbox.path(".pipeline/demo_replica.db"),
        "SELECT substr(created_at, 1, 10) || 'T' || substr(created_at, 12, 2), count(*) \
         FROM orders WHERE created_at >= '2026-11-05 22:00:00' \
         AND created_at < '2026-11-06 02:00:00' GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(
        counted, replica,
        "the orders of each hour, counted in its own partition"
    );
    assert_eq!(counted.len(), 4, "{counted:?}");
    let status = sandbox.run(DAILY, &["status", "--date", "2026-11-05T23"], &[]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(
        status.stdout.contains("2026-11-05T23") && status.stdout.contains("complete"),
        "{}",
        status.stdout
    );
    let day = sandbox.run(DAILY, &["status", "--date", "2026-11-05"], &[]);
    assert!(
        !day.stdout.contains("complete"),
        "the day is a partition apart from its hours: {}",
        day.stdout
    );
    let again = sandbox.run(
        DAILY,
        &[
            "run",
            "--partition",
            "2026-11-06T00",
            "count_orders_by_city",
            "--json",
        ],
        &[],
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let tasks = again.json()["tasks"].clone();
    assert!(
        tasks
            .as_array()
            .expect("tasks")
            .iter()
            .all(|t| t["status"] == "skipped"),
        "a finished hour is skipped: {tasks}"
    );

    let listed = sandbox.run(DAILY, &["schedules", "--json"], &[]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let schedules = listed.json();
    let hourly = schedules
        .as_array()
        .expect("schedules")
        .iter()
        .find(|schedule| schedule["name"] == "hourly_orders")
        .expect("the example's hourly schedule");
    assert_eq!(hourly["partition"], "hourly");
    let next: Vec<&str> = hourly["next"]
        .as_array()
        .expect("next ticks")
        .iter()
        .filter_map(|tick| tick["partition"].as_str())
        .collect();
    assert_eq!(next.len(), 5);
    assert!(
        next.iter()
            .all(|p| p.len() == 13 && p.as_bytes()[10] == b'T'),
        "each tick runs an hour: {next:?}"
    );

    let mixed = sandbox.run(
        DAILY,
        &["backfill", "--from", "2026-11-05", "--to", "2026-11-05T05"],
        &[],
    );
    assert_eq!(mixed.code, Some(2), "{}", mixed.stderr);
    mixed.assert_stderr_has("--from 2026-11-05T00 --to 2026-11-05T05");
    let bad_hour = sandbox.run(DAILY, &["run", "--date", "2026-11-05T24"], &[]);
    assert_eq!(bad_hour.code, Some(2), "{}", bad_hour.stderr);
    bad_hour.assert_stderr_has("YYYY-MM-DDTHH for an hour");
}

#[test]
fn daily_lineage_lists_each_table_with_its_writer_and_readers() {
    let sandbox = Sandbox::new("daily-lineage");
    let listed = sandbox.run(DAILY, &["lineage", "--format", "json"], &[]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let json = listed.json();
    let table = |name: &str| {
        json["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|table| table["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json}"))
            .clone()
    };
    let orders = table("warehouse.orders");
    assert_eq!(orders["writers"], serde_json::json!(["load"]));
    assert_eq!(
        orders["readers"],
        serde_json::json!([
            "count_orders_by_city",
            "load",
            "make_order_model",
            "orders_have_unique_ids"
        ])
    );
    assert_eq!(table("replica.orders")["source"], true);
    assert_eq!(
        table("warehouse.order_model")["readers"],
        serde_json::json!(["make_management_report"])
    );
    let text = sandbox.run(DAILY, &["lineage"], &[]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout
            .lines()
            .any(|line| line.starts_with("warehouse.currency_rates ")
                && line.ends_with("written by load_currency; read by make_order_model")),
        "{}",
        text.stdout
    );
    let wrong = sandbox.run(DAILY, &["lineage", "--format", "svg"], &[]);
    assert_eq!(wrong.code, Some(2), "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("use `text`, `dot`, `mermaid` or `json`"),
        "{}",
        wrong.stderr
    );
}

#[tokio::test]
async fn test_mode_fails_a_task_that_touches_a_table_it_does_not_declare() {
    const LINEAGE: &str = env!("CARGO_BIN_EXE_lineage-pipeline");
    let sandbox = Sandbox::new("lineage-test-mode");
    // A date each: a finished task is skipped on a second run of its date.
    let clean = sandbox.run(
        LINEAGE,
        &["run", "--test", "--date", "2026-11-20", "--json"],
        &[],
    );
    assert_eq!(clean.code, Some(0), "{}", clean.stderr);

    // Each marker makes `make_report` touch a table it does not declare: in its script, in a
    // query on the pool whose error it ignores, in a transaction begun on the pool.
    for (marker, date, refusal, statement) in [
        (
            "sneak-read",
            "2026-11-21",
            "test mode: task `make_report` reads `warehouse.refunds`, which it does not declare",
            "INSERT INTO report SELECT count(*), 0 FROM refunds",
        ),
        (
            "sneak-write",
            "2026-11-22",
            "test mode: task `make_report` writes `warehouse.scratch`, which it does not declare",
            "CREATE TABLE scratch",
        ),
        (
            "sneak-pool-read",
            "2026-11-23",
            "test mode: task `make_report` reads `warehouse.refunds`, which it does not declare",
            "SELECT count(*) FROM refunds",
        ),
        (
            "sneak-tx-write",
            "2026-11-24",
            "test mode: task `make_report` writes `warehouse.scratch_tx`, which it does not \
             declare",
            "CREATE TABLE scratch_tx",
        ),
    ] {
        sandbox.write(marker, "");
        let run = sandbox.run(LINEAGE, &["run", "--test", "--date", date, "--json"], &[]);
        sandbox.remove(marker);
        assert_eq!(run.code, Some(1), "{marker}: {}", run.stderr);
        let report = run.json();
        let task = report["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|task| task["name"] == "make_report")
            .expect("make_report")
            .clone();
        assert_eq!(task["status"], "failed", "{marker}: {report}");
        assert_eq!(
            task["attempts"], 1,
            "{marker}: no retry declares a table: {report}"
        );
        let error = task["error"].as_str().expect("an error");
        assert!(error.contains(refusal), "{marker}: {error}");
        assert!(
            error.contains(statement),
            "{marker}: the statement is named: {error}"
        );
    }
    // Outside test mode nothing is held: the statement runs as written.
    sandbox.write("sneak-write", "");
    let production = sandbox.run(LINEAGE, &["run", "--date", "2026-11-22", "--json"], &[]);
    assert_eq!(production.code, Some(0), "{}", production.stderr);
    // The refused statement never ran.
    let test_file = sandbox.path(".pipeline/warehouse.test.db");
    assert_eq!(
        sqlite_rows(
            &test_file,
            "SELECT count(*) FROM sqlite_master WHERE name = 'scratch_tx'"
        )
        .await,
        ["0"]
    );
}
