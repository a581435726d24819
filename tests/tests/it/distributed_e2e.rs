//! Distributed runs with real processes on one PostgreSQL state store: `run --distributed`
//! queues, `daily worker` processes claim and run; a killed worker's attempt is rescued once
//! its lease runs out and retried elsewhere; a frozen worker's late outcome is refused; a
//! worker of another graph leaves a run alone; SIGTERM hands back what does not end in time.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use pipeline_tests::http_stub::StubServer;
use pipeline_tests::{Output, PgDatabase, Sandbox, finish, postgres_admin_url, psql, signal};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const DATA_PIPELINE: &str = env!("CARGO_BIN_EXE_data-pipeline");

/// A sandbox whose state store is a fresh PostgreSQL database.
fn sandbox(name: &str) -> (Sandbox, PgDatabase) {
    let sandbox = Sandbox::new(name);
    let db = PgDatabase::create();
    sandbox.write("pipeline.toml", &format!("[state]\nurl = \"{}\"\n", db.url));
    (sandbox, db)
}

fn worker(sandbox: &Sandbox, binary: &str, extra: &[&str]) -> Child {
    worker_with_env(sandbox, binary, extra, &[])
}

fn worker_with_env(sandbox: &Sandbox, binary: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
    worker_leasing(sandbox, binary, "2", extra, env)
}

/// A worker with a lease of `lease_secs` and a grace period of 1 s.
fn worker_leasing(
    sandbox: &Sandbox,
    binary: &str,
    lease_secs: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let mut args = vec!["worker", "--lease-secs", lease_secs, "--grace-secs", "1"];
    args.extend_from_slice(extra);
    sandbox.spawn(binary, &args, env)
}

/// Waits until `daily workers --json` lists `count` live workers.
fn wait_for_workers(sandbox: &Sandbox, binary: &str, count: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = sandbox.run(binary, &["workers", "--json"], &[]);
        if listed.code == Some(0) {
            let json = listed.json();
            if json
                .as_array()
                .is_some_and(|workers| workers.len() == count)
            {
                return json;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never {count} workers: {}",
            listed.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One worker, and a distributed run of `task` (which sleeps `sleep_ms`) that it has started.
fn one_worker_running(sandbox: &Sandbox, task: &str, sleep_ms: u64) -> (Child, Child) {
    sandbox.write(&format!("sleep-{task}"), &sleep_ms.to_string());
    let worker = worker(sandbox, PIPELINE, &["--slots", "1"]);
    wait_for_workers(sandbox, PIPELINE, 1);
    let run = sandbox.spawn(PIPELINE, &["run", "--distributed", task, "--json"], &[]);
    sandbox.wait_for("ran.log", &format!("{task} started"));
    (worker, run)
}

fn stop(child: Child) -> Output {
    signal(&child, "TERM");
    finish(child)
}

fn task<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|task| task["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

#[test]
fn workers_run_a_distributed_run_each_task_once_with_the_usual_outcomes() {
    let (sandbox, db) = sandbox("dist-run");
    sandbox.write("fail-transform-once", "");
    sandbox.write("fail-optional_feed", "");
    sandbox.write("log-extract", "extracted on a worker");
    let workers = [
        worker(&sandbox, PIPELINE, &["--slots", "2"]),
        worker(&sandbox, PIPELINE, &["--slots", "2"]),
    ];
    let listed = wait_for_workers(&sandbox, PIPELINE, 2);
    assert!(
        listed
            .as_array()
            .expect("workers")
            .iter()
            .all(|w| w["slots"] == 2),
        "{listed}"
    );
    let run = sandbox.run(PIPELINE, &["run", "--distributed", "--json"], &[]);
    let json = run.json();
    // A non-critical feed that a critical task requires fails the run, as in one process.
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(task(&json, "transform")["status"], "succeeded");
    assert_eq!(
        task(&json, "transform")["attempts"],
        2,
        "its retry ran on a worker"
    );
    assert_eq!(task(&json, "optional_feed")["status"], "failed");
    assert_eq!(task(&json, "publish")["status"], "upstream_failed");
    assert_eq!(task(&json, "report")["status"], "succeeded");
    assert_eq!(task(&json, "events_are_fresh")["status"], "succeeded");
    let log = sandbox.read("ran.log");
    for name in ["extract", "slow", "report", "validate", "bounded"] {
        assert_eq!(
            log.matches(&format!("{name} started")).count(),
            1,
            "{name} ran once: {log}"
        );
    }
    assert!(!log.contains("publish started"), "{log}");
    // What a task logged on its worker is kept with its attempt.
    let logs = sandbox.run(PIPELINE, &["logs", "extract"], &[]);
    assert!(
        logs.stdout.contains("INFO extracted on a worker"),
        "{}",
        logs.stdout
    );

    // Resumes like any run: what is complete is skipped, the rest queued again.
    sandbox.remove("fail-optional_feed");
    let again = sandbox.run(PIPELINE, &["run", "--distributed", "--json"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let json = again.json();
    assert_eq!(task(&json, "extract")["status"], "skipped");
    assert_eq!(task(&json, "publish")["status"], "succeeded");

    for child in workers {
        let stopped = stop(child);
        assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    }
    let none = sandbox.run(PIPELINE, &["workers"], &[]);
    assert!(none.stdout.contains("no live workers"), "{}", none.stdout);
    // Every process closed its connections to the state store as PostgreSQL expects: one
    // dropped with the process is logged by the server as reset by peer, and counted here.
    assert_eq!(
        psql(
            &db.url,
            "SELECT sessions_abandoned FROM pg_stat_database WHERE datname = current_database()"
        )
        .trim(),
        "0",
        "connections were dropped, not closed"
    );
}

/// One worker and a distributed run of `extract` alone, both with `env`: the run's output and
/// the worker, still running.
fn extract_on_one_worker(sandbox: &Sandbox, env: &[(&str, &str)]) -> (Output, Child) {
    let on_worker = worker_with_env(sandbox, PIPELINE, &[], env);
    wait_for_workers(sandbox, PIPELINE, 1);
    let run = sandbox.run(
        PIPELINE,
        &["run", "--distributed", "--json", "--only", "extract"],
        env,
    );
    (run, on_worker)
}

#[test]
fn a_warning_left_on_a_worker_reaches_the_summary_and_slack_once() {
    let (sandbox, _db) = sandbox("dist-warn");
    let slack = StubServer::start();
    let webhook = slack.url("/slack/hook");
    let env = [("PIPELINE_SLACK_WEBHOOK", webhook.as_str())];
    sandbox.write("warn-extract", "3 rows had no country");
    // Both processes could alert: the warning must be sent once, not by each.
    let (run, on_worker) = extract_on_one_worker(&sandbox, &env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json = run.json();
    let details = task(&json, "extract")["details"].to_string();
    assert!(details.contains("warning: 3 rows had no country"), "{json}");
    let alerts = slack.slack_texts("/slack/");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("succeeded with a warning")
            && alerts[0].contains("3 rows had no country"),
        "{alerts:?}"
    );
    assert_eq!(stop(on_worker).code, Some(0));
}

#[test]
fn openlineage_events_of_a_distributed_run_come_once_from_its_coordinator() {
    let (sandbox, _db) = sandbox("dist-openlineage");
    let marquez = StubServer::start();
    let url = marquez.url("/marquez");
    let env = [("PIPELINE_OPENLINEAGE_URL", url.as_str())];
    // Both processes are configured: only the run's coordinator sends.
    let (run, on_worker) = extract_on_one_worker(&sandbox, &env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let events: Vec<(String, String)> = marquez
        .requests_to("/marquez/api/v1/lineage")
        .iter()
        .map(|request| {
            let event = request.json();
            (
                event["eventType"].as_str().unwrap_or("").to_string(),
                event["job"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("START", "e2e-pipeline"),
        ("START", "e2e-pipeline.extract"),
        ("COMPLETE", "e2e-pipeline.extract"),
        ("COMPLETE", "e2e-pipeline"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(kind, job)| (kind.to_string(), job.to_string()))
        .collect();
    assert_eq!(events, expected);
    assert_eq!(stop(on_worker).code, Some(0));
}

#[test]
fn a_killed_workers_attempt_is_rescued_after_its_lease_and_retried_elsewhere() {
    let (sandbox, db) = sandbox("dist-kill");
    // The first attempt sleeps long enough to be caught running; later ones are quick.
    let (first, run) = one_worker_running(&sandbox, "validate", 20_000);
    sandbox.remove("sleep-validate");
    let second = worker(&sandbox, PIPELINE, &["--slots", "1"]);
    signal(&first, "KILL");
    let _ = finish(first);
    let started = Instant::now();
    let run = finish(run);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let validate = task(&json, "validate");
    assert_eq!(validate["status"], "succeeded");
    assert_eq!(
        validate["attempts"], 2,
        "the lost attempt counts under the retries"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "rescued within about a lease period, not after the task's sleep"
    );
    let attempts = psql(
        &db.url,
        "SELECT attempt || ' ' || status || ' ' || COALESCE(error, '') FROM pipeline_attempts \
         WHERE task = 'validate' ORDER BY attempt",
    );
    let attempts: Vec<&str> = attempts.lines().collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].starts_with("1 failed worker lost:"),
        "{attempts:?}"
    );
    assert_eq!(attempts[1].trim(), "2 succeeded");
    let _ = stop(second);
}

/// A run waiting for workers does not read its queued attempts every second: its watcher
/// rescues lost attempts every second from the run's running ones, and reads every
/// attempt it waits for only every ten seconds. It read them all every second, by primary
/// key: 40,000 outstanding attempts cost the database 50-80 ms of every second.
#[test]
fn a_run_waiting_for_workers_does_not_read_its_queued_attempts_every_second() {
    let (sandbox, db) = sandbox("dist-waiting");
    let run = sandbox.spawn(
        PIPELINE,
        &["run", "--distributed", "--date", "2026-11-25", "--json"],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let queued = loop {
        let migrated = psql(&db.url, "SELECT to_regclass('pipeline_work') IS NOT NULL") == "t";
        let queued: usize = if migrated {
            psql(
                &db.url,
                "SELECT count(*) FROM pipeline_work WHERE state = 'queued'",
            )
            .parse()
            .expect("a count")
        } else {
            0
        };
        if queued > 0 {
            break queued;
        }
        assert!(Instant::now() < deadline, "nothing was queued");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(5));
    signal(&run, "TERM");
    let run = finish(run);
    assert_eq!(run.code, Some(130), "{}\n{}", run.stdout, run.stderr);
    // A connection's statistics are complete once its backend has ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while psql(
        &db.url,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    ) != "0"
    {
        assert!(Instant::now() < deadline, "the run's connections stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lookups: usize = psql(
        &db.url,
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'pipeline_work_pkey'",
    )
    .parse()
    .expect("a count");
    // One read of them all may fall in the run's first seconds on a slow machine (its start
    // before the 5 s counts towards the ten); a read every second comes to five or more.
    assert!(
        lookups < 2 * queued,
        "{lookups} lookups of the queue's rows by id in 5 s, for {queued} queued attempts"
    );
}

#[test]
fn a_frozen_workers_late_outcome_is_refused_and_the_newer_attempt_stands() {
    let (sandbox, _db) = sandbox("dist-freeze");
    let (frozen, run) = one_worker_running(&sandbox, "validate", 3000);
    signal(&frozen, "STOP");
    // Past its lease: the attempt is rescued and runs on the other worker.
    let other = worker(&sandbox, PIPELINE, &["--slots", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.read("ran.log").matches("validate started").count() < 2 {
        assert!(Instant::now() < deadline, "{}", sandbox.read("ran.log"));
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&frozen, "CONT");
    let run = finish(run);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(task(&json, "validate")["status"], "succeeded");
    assert_eq!(task(&json, "validate")["attempts"], 2);
    let frozen = stop(frozen);
    // Woken, it finds the attempt taken from it, or cannot renew in time and fences itself:
    // either way it drops the attempt and writes nothing for it.
    assert!(
        frozen.stderr.contains("no longer this worker's")
            || frozen.stderr.contains("after its lease was lost")
            || frozen.stderr.contains("stopping 1 attempt(s)"),
        "the woken worker dropped its attempt: {}",
        frozen.stderr
    );
    let _ = stop(other);
}

#[test]
fn a_worker_of_another_graph_leaves_the_run_alone_and_says_why() {
    let (sandbox, _db) = sandbox("dist-skew");
    sandbox.write("tables.txt", "users\norders\n");
    let other_dir = Sandbox::new("dist-skew-other");
    other_dir.write("pipeline.toml", &sandbox.read("pipeline.toml"));
    other_dir.write("tables.txt", "users\norders\npayments\n");
    let stale = worker(&other_dir, DATA_PIPELINE, &[]);
    wait_for_workers(&sandbox, DATA_PIPELINE, 1);
    let run = sandbox.spawn(DATA_PIPELINE, &["run", "--distributed", "--json"], &[]);
    // Only the stale worker runs: nothing of the run may start.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sandbox.read("ran.log"),
        "",
        "no task ran on the other graph"
    );
    let current = worker(&sandbox, DATA_PIPELINE, &[]);
    let run = finish(run);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let stale = stop(stale);
    assert!(
        stale.stderr.contains("was planned with another task graph"),
        "{}",
        stale.stderr
    );
    assert_eq!(other_dir.read("ran.log"), "");
    let _ = stop(current);
}

/// Claims and outcomes slowed down in the database (every change of an attempt's state takes
/// 150 ms, so a claim of 8 takes 1.2 s, most of a renewal period): the worker's heartbeat and lease
/// renewals keep their cadence on their own connection and task, and no attempt is lost, run
/// twice, or reported lost after it ended.
#[test]
fn lease_renewals_stay_on_time_while_claims_and_outcomes_fill_the_pool() {
    let (sandbox, db) = sandbox("dist-renewals");
    let tables: Vec<String> = (0..24).map(|n| format!("t{n}")).collect();
    sandbox.write("tables.txt", &tables.join("\n"));
    let busy = worker_leasing(&sandbox, DATA_PIPELINE, "3", &["--slots", "8"], &[]);
    wait_for_workers(&sandbox, DATA_PIPELINE, 1);
    psql(
        &db.url,
        "CREATE FUNCTION slow_work() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF OLD.state IS DISTINCT FROM NEW.state THEN PERFORM pg_sleep(0.15); END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER slow_work BEFORE UPDATE ON pipeline_work FOR EACH ROW \
           EXECUTE FUNCTION slow_work()",
    );
    // The heartbeat's age by the store's clock, sampled while the run goes on.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, url) = (std::sync::Arc::clone(&done), db.url.clone());
        std::thread::spawn(move || {
            let mut ages = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let age = psql(
                    &url,
                    "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) - \
                     max(heartbeat_at) FROM pipeline_workers",
                );
                ages.extend(age.parse::<i64>().ok());
                std::thread::sleep(Duration::from_millis(50));
            }
            ages
        })
    };
    let run = sandbox.run(DATA_PIPELINE, &["run", "--distributed", "--json"], &[]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let ages = sampler.join().expect("the sampler");
    let busy = stop(busy);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    for task in json["tasks"].as_array().expect("tasks") {
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(task["attempts"], 1, "{task}");
    }
    let oldest = ages.iter().copied().max().unwrap_or_default();
    // Renewals come every second (a third of the 3 s lease); two thirds of it unanswered
    // stop the attempts. Behind claims of 1.2 s, they would come up to 2.2 s apart.
    assert!(
        ages.len() > 20 && oldest < 1_600,
        "the heartbeat aged {oldest} ms at most over {} samples",
        ages.len()
    );
    for lost in ["no longer this worker's", "cannot renew"] {
        assert!(!busy.stderr.contains(lost), "{lost}: {}", busy.stderr);
    }
}

/// The state store gone for 1.2 s, as in a restart (connections cut, new ones refused, through
/// a proxy the test takes down): the worker renews within a second of its return, on a new
/// connection, and its attempt goes on (a 3 s lease: it would stop after 2 s without one).
#[test]
fn a_worker_renews_within_a_second_after_the_database_comes_back() {
    let (sandbox, db) = sandbox("dist-reconnect");
    let server = postgres_admin_url();
    let address = server
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|host| host.parse().ok())
        .expect("DATABASE_URL names host:port as an address");
    let proxy = pipeline_tests::tcp_proxy::TcpProxy::start(address);
    let through_proxy = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        server
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map_or("postgres", |(user, _)| user),
        proxy.port,
        db.name
    );
    sandbox.write(
        "pipeline.toml",
        &format!("[state]\nurl = \"{through_proxy}\"\n"),
    );
    sandbox.write("sleep-slow", "6000");
    let worker = worker_leasing(&sandbox, PIPELINE, "3", &["--slots", "1"], &[]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    let run = sandbox.spawn(PIPELINE, &["run", "--distributed", "slow", "--json"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    // The store goes away just after a renewal, as the test's arithmetic assumes: at any
    // other moment, up to a renewal period more has passed without one when it comes back
    // (under load, 2 s of 3 were gone before its return, and the worker rightly stopped).
    let heartbeat = || psql(&db.url, "SELECT heartbeat_at FROM pipeline_workers");
    let before = heartbeat();
    let deadline = Instant::now() + Duration::from_secs(5);
    while heartbeat() == before {
        assert!(Instant::now() < deadline, "no renewal within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.down();
    std::thread::sleep(Duration::from_millis(1_200));
    proxy.up();
    let back = Instant::now();
    let now_ms = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    let renewed = loop {
        let age = psql(
            &db.url,
            &format!("SELECT {now_ms} - heartbeat_at FROM pipeline_workers"),
        );
        let age: u128 = age.parse().unwrap_or(u128::MAX);
        // A heartbeat younger than the time since the store came back was written after it.
        if age < back.elapsed().as_millis() {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no renewal after the database came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = finish(run);
    let worker = stop(worker);
    assert!(
        renewed < Duration::from_millis(1_000),
        "renewed {renewed:?} after the database came back: {}",
        worker.stderr
    );
    assert!(
        !worker.stderr.contains("stopping 1 attempt(s)"),
        "{}",
        worker.stderr
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(task(&json, "slow")["attempts"], 1, "{json}");
    assert_eq!(sandbox.read("ran.log").matches("slow started").count(), 1);
}

/// A worker needs five connections to the state store; a role allowed two is refused at
/// start, saying so, instead of a worker whose renewals wait for a connection.
#[test]
fn a_worker_whose_role_allows_too_few_connections_refuses_to_start() {
    let roles = pipeline_tests::PgRoles::new(1);
    let role = &roles.names[0];
    let db = PgDatabase::create();
    psql(
        &db.url,
        &format!(
            "ALTER ROLE {role} CONNECTION LIMIT 2; ALTER DATABASE \"{}\" OWNER TO {role}; \
             GRANT CREATE ON SCHEMA public TO {role}",
            db.name
        ),
    );
    let sandbox = Sandbox::new("dist-two-connections");
    let url = pipeline_tests::url_as(&db.url, role);
    sandbox.write("pipeline.toml", &format!("[state]\nurl = \"{url}\"\n"));
    let started = Instant::now();
    let refused = sandbox.run(PIPELINE, &["worker", "--lease-secs", "2"], &[]);
    assert_ne!(refused.code, Some(0), "{}", refused.stderr);
    refused.assert_stderr_has("a worker needs 5 connections to the state store");
    refused.assert_stderr_has("allows 2 more");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(db);
}

#[test]
fn sigterm_hands_back_what_does_not_end_within_the_grace_period() {
    let (sandbox, _db) = sandbox("dist-term");
    let (leaving, run) = one_worker_running(&sandbox, "slow", 20_000);
    sandbox.remove("sleep-slow");
    let leaving = stop(leaving);
    assert_eq!(leaving.code, Some(0), "{}", leaving.stderr);
    assert!(leaving.stderr.contains("handed back"), "{}", leaving.stderr);
    let staying = worker(&sandbox, PIPELINE, &["--slots", "1"]);
    let run = finish(run);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(task(&json, "slow")["status"], "succeeded");
    assert_eq!(
        task(&json, "slow")["attempts"],
        1,
        "a handed-back attempt is no failure: it runs again as the same attempt"
    );
    let _ = stop(staying);
}

#[test]
fn a_sqlite_state_store_refuses_distributed_runs_and_workers() {
    let sandbox = Sandbox::new("dist-sqlite");
    for args in [
        &["run", "--distributed"][..],
        &["worker"][..],
        &["workers"][..],
    ] {
        let refused = sandbox.run(PIPELINE, args, &[]);
        assert_eq!(refused.code, Some(2), "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has("needs a PostgreSQL state store");
        refused.assert_stderr_has("PIPELINE_STATE_URL");
    }
    let zero = sandbox.run(PIPELINE, &["worker", "--slots", "0"], &[]);
    assert_eq!(zero.code, Some(2), "{}", zero.stderr);
}

#[test]
fn a_worker_cut_off_from_the_database_stops_its_attempts_itself() {
    let (sandbox, db) = sandbox("dist-fence");
    sandbox.write("sleep-validate", "20000");
    let cut_off = worker_leasing(&sandbox, PIPELINE, "3", &[], &[]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    let mut run = sandbox.spawn(PIPELINE, &["run", "--distributed", "validate"], &[]);
    sandbox.wait_for("ran.log", "validate started");
    // Nobody reaches the database any more: its connections are cut, and new ones refused.
    let admin = postgres_admin_url();
    psql(
        &admin,
        &format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", db.name),
    );
    psql(
        &admin,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
            db.name
        ),
    );
    // Two thirds of the lease without a renewal, and one renewal period more at most.
    std::thread::sleep(Duration::from_secs(5));
    psql(
        &admin,
        &format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", db.name),
    );
    let _ = run.kill();
    let _ = run.wait();
    let cut_off = stop(cut_off);
    assert!(
        cut_off.stderr.contains("cannot renew leases for")
            && cut_off.stderr.contains("stopping 1 attempt(s)"),
        "{}",
        cut_off.stderr
    );
    assert!(
        !sandbox.read("ran.log").contains("validate done"),
        "the attempt was stopped, not left to run: {}",
        sandbox.read("ran.log")
    );
}

/// The ids of the runs `daily history` lists as running.
fn running_runs(sandbox: &Sandbox) -> Vec<String> {
    let history = sandbox.run(PIPELINE, &["history"], &[]);
    history
        .stdout
        .lines()
        .filter(|line| line.split_whitespace().nth(2) == Some("running"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn daily_cancel_stops_a_distributed_and_an_in_process_run_from_elsewhere() {
    let (sandbox, _db) = sandbox("dist-cancel");
    sandbox.write("sleep-slow", "60000");
    let worker = worker(&sandbox, PIPELINE, &["--slots", "1"]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    let distributed = sandbox.spawn(
        PIPELINE,
        &[
            "run",
            "--distributed",
            "slow",
            "--date",
            "2026-11-25",
            "--json",
        ],
        &[],
    );
    let in_process = sandbox.spawn(
        PIPELINE,
        &["run", "slow", "--date", "2026-11-26", "--json"],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.read("ran.log").matches("slow started").count() < 2 {
        assert!(Instant::now() < deadline, "{}", sandbox.read("ran.log"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let runs = running_runs(&sandbox);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let asked = Instant::now();
    for run in &runs {
        let cancel = sandbox.run(PIPELINE, &["cancel", run], &[]);
        assert_eq!(cancel.code, Some(0), "{}", cancel.stderr);
        assert!(cancel.stdout.contains("to cancel"), "{}", cancel.stdout);
    }
    for run in [distributed, in_process] {
        let run = finish(run);
        assert_eq!(run.code, Some(130), "{}\n{}", run.stdout, run.stderr);
        assert_eq!(task(&run.json(), "slow")["status"], "cancelled");
    }
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "cancelled within a heartbeat, not after the task's minute"
    );
    let again = sandbox.run(PIPELINE, &["cancel", &runs[0]], &[]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    again.assert_stderr_has("has ended (cancelled): there is nothing to cancel");
    let unknown = sandbox.run(PIPELINE, &["cancel", "99999"], &[]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    unknown.assert_stderr_has("there is no run 99999");
    let _ = stop(worker);
}

/// A coordinator killed with -9 leaves its attempts in the queue. The next run of the date
/// breaks its lock and cancels them: the dead run's attempt stops on its worker at the next
/// renewal, and the next run's own attempt of the task gets the slot at once, instead of
/// after the dead one's task ran to its end.
#[test]
fn a_killed_coordinators_attempts_stop_when_the_next_run_breaks_its_lock() {
    let (sandbox, _db) = sandbox("dist-dead-coordinator");
    let (worker, dead) = one_worker_running(&sandbox, "slow", 40_000);
    signal(&dead, "KILL");
    let _ = finish(dead);
    sandbox.remove("sleep-slow");
    let started = Instant::now();
    let next = finish(sandbox.spawn(PIPELINE, &["run", "--distributed", "slow", "--json"], &[]));
    assert_eq!(next.code, Some(0), "{}\n{}", next.stdout, next.stderr);
    assert_eq!(task(&next.json(), "slow")["status"], "succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the dead run's attempt gave up the worker's one slot: {:?}",
        started.elapsed()
    );
    let ran = sandbox.read("ran.log");
    assert_eq!(ran.matches("slow started").count(), 2, "{ran}");
    assert_eq!(ran.matches("slow done").count(), 1, "{ran}");
    stop(worker).assert_stderr_has("no longer this worker's");
}

/// The environment that sets a worker's clock `offset` off (`+1h`), with libfaketime; time
/// measured by the monotonic clock (timers, timeouts) stays true.
fn clock_off(offset: &str) -> Vec<(&'static str, String)> {
    let lib = std::env::var("FAKETIME_LIB")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into());
    assert!(
        Path::new(&lib).exists(),
        "libfaketime is required for this test ({lib}): install faketime (.ci/run does)"
    );
    vec![
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset.to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ("FAKETIME_NO_CACHE", "1".into()),
    ]
}

#[test]
fn workers_whose_clocks_are_an_hour_off_neither_lose_nor_steal_work() {
    let (sandbox, _db) = sandbox("dist-clock");
    // Both attempts outlast the lease: only renewals judged by the database's clock keep them.
    sandbox.write("sleep-validate", "5000");
    sandbox.write("sleep-slow", "5000");
    let mut workers = Vec::new();
    for offset in ["+1h", "-1h"] {
        let env = clock_off(offset);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        workers.push(worker_with_env(&sandbox, PIPELINE, &["--slots", "1"], &env));
    }
    wait_for_workers(&sandbox, PIPELINE, 2);
    let run = sandbox.run(
        PIPELINE,
        &["run", "--distributed", "validate", "slow", "--json"],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    for name in ["validate", "slow"] {
        assert_eq!(task(&json, name)["status"], "succeeded", "{json}");
        assert_eq!(task(&json, name)["attempts"], 1, "never rescued: {json}");
    }
    let log = sandbox.read("ran.log");
    assert_eq!(log.matches("started").count(), 2, "each ran once: {log}");
    let hour_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 3600 % 24);
    for (child, shift) in workers.into_iter().zip([1, 23]) {
        let stopped = stop(child);
        assert!(
            !stopped.stderr.contains("no longer this worker's"),
            "{}",
            stopped.stderr
        );
        // Its log's timestamps come from its own clock: it was an hour off.
        let logged_hour: Option<u64> = stopped
            .stderr
            .lines()
            .next()
            .and_then(|line| line.get(11..13))
            .and_then(|hour| hour.parse().ok());
        assert_eq!(
            logged_hour,
            Some((hour_now + shift) % 24),
            "{}",
            stopped.stderr
        );
    }
}

/// Waits until `daily history` lists a run of `partition` with `status`; the listing.
fn wait_for_history(sandbox: &Sandbox, partition: &str, status: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let history = sandbox.run(PIPELINE, &["history"], &[]).stdout;
        let found = history.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&partition) && fields.get(2) == Some(&status)
        });
        if found {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} run of {partition}: {history}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_attempt_on_a_worker_is_recorded_running_while_it_runs() {
    let (sandbox, db) = sandbox("dist-running");
    let (worker, run) = one_worker_running(&sandbox, "slow", 3000);
    // Held back a moment (a short attempt is written once, ended), then on record.
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        let status = psql(
            &db.url,
            "SELECT string_agg(status, ',') FROM pipeline_attempts WHERE task = 'slow'",
        );
        if status == "running" || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, "running", "the attempt is on record as running");
    let ran = finish(run);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(task(&ran.json(), "slow")["status"], "succeeded");
    let _ = stop(worker);
}

#[test]
fn a_detached_run_is_coordinated_by_a_worker_and_taken_over_when_that_worker_dies() {
    let (sandbox, _db) = sandbox("dist-detach");
    sandbox.write("sleep-slow", "4000");
    let first = worker(&sandbox, PIPELINE, &["--slots", "2"]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    let submitted = Instant::now();
    let submit = sandbox.run(
        PIPELINE,
        &[
            "run",
            "--distributed",
            "--detach",
            "--date",
            "2026-11-20",
            "--json",
        ],
        &[],
    );
    assert_eq!(submit.code, Some(0), "{}", submit.stderr);
    assert_eq!(submit.json()["status"], "submitted");
    assert!(
        submitted.elapsed() < Duration::from_secs(5),
        "it returns at once"
    );
    // The worker coordinates the run and runs its tasks; it dies while `slow` runs.
    sandbox.wait_for("ran.log", "slow started");
    wait_for_history(&sandbox, "2026-11-20", "running");
    signal(&first, "KILL");
    let _ = finish(first);
    sandbox.remove("sleep-slow");
    // Another worker takes the run on once the lease ran out, and resumes it.
    let second = worker(&sandbox, PIPELINE, &["--slots", "2"]);
    let history = wait_for_history(&sandbox, "2026-11-20", "succeeded");
    assert!(
        history.contains("abandoned"),
        "the dead coordinator's run is abandoned: {history}"
    );
    let log = sandbox.read("ran.log");
    assert_eq!(
        log.matches("extract started").count(),
        1,
        "what completed under the first coordinator is skipped: {log}"
    );
    assert_eq!(log.matches("slow started").count(), 2, "{log}");
    stop(second).assert_stderr_has("coordinating detached run");
}

#[tokio::test]
async fn test_mode_on_workers_writes_only_to_the_test_databases() {
    let (sandbox, _db) = sandbox("dist-test-mode");
    let worker = worker(&sandbox, PIPELINE, &["--slots", "2"]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    let run = sandbox.run(
        PIPELINE,
        &[
            "run",
            "--distributed",
            "--test",
            "events_are_fresh",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(task(&run.json(), "stamp")["status"], "succeeded");
    let test_rows = pipeline_tests::sqlite_rows(
        &sandbox.path(".pipeline/warehouse.test.db"),
        "SELECT count(*) FROM events",
    )
    .await;
    assert_eq!(test_rows, ["1"], "the worker wrote to the test database");
    let production = sandbox.path(".pipeline/warehouse.db");
    if production.exists() {
        let tables = pipeline_tests::sqlite_rows(
            &production,
            "SELECT count(*) FROM sqlite_master WHERE name = 'events'",
        )
        .await;
        assert_eq!(tables, ["0"], "production tables are untouched");
    }
    let _ = stop(worker);
}

#[test]
fn a_pool_bounds_its_tasks_across_runs_of_different_processes_and_workers() {
    let (sandbox, _db) = sandbox("dist-pool");
    for source in ["a", "b", "c"] {
        sandbox.write(&format!("sleep-narrow[{source}]"), "300");
    }
    let workers = [
        worker(&sandbox, PIPELINE, &["--slots", "3"]),
        worker(&sandbox, PIPELINE, &["--slots", "3"]),
    ];
    wait_for_workers(&sandbox, PIPELINE, 2);
    // Two runs, each coordinated by its own process: the pool of one is the same one.
    let runs: Vec<Child> = ["2026-11-25", "2026-11-26"]
        .into_iter()
        .map(|date| {
            sandbox.spawn(
                PIPELINE,
                &["run", "--distributed", "narrow", "--date", date, "--json"],
                &[],
            )
        })
        .collect();
    for run in runs {
        let run = finish(run);
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    }
    let log = sandbox.read("ran.log");
    let mut running = 0;
    let mut most = 0;
    for line in log.lines().filter(|line| line.starts_with("narrow")) {
        if line.ends_with("started") {
            running += 1;
            most = most.max(running);
        } else if line.ends_with("done") {
            running -= 1;
        }
    }
    assert_eq!(log.matches("started").count(), 6, "{log}");
    assert_eq!(most, 1, "one reader of the narrow source at a time: {log}");
    for child in workers {
        let _ = stop(child);
    }
}

/// The distinct warehouse connections that the loads of the run of `date` used, on a worker of
/// `slots` slots, each load holding its connection for `seconds`.
fn warehouse_connections(sandbox: &Sandbox, date: &str, slots: &str, seconds: &str) -> usize {
    sandbox.write("backend-pids", seconds);
    sandbox.write("ran.log", "");
    let worker = worker(sandbox, DATA_PIPELINE, &["--slots", slots]);
    wait_for_workers(sandbox, DATA_PIPELINE, 1);
    let run = sandbox.run(
        DATA_PIPELINE,
        &["run", "--distributed", "--date", date, "--json"],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let _ = stop(worker);
    let log = sandbox.read("ran.log");
    assert_eq!(log.matches(" pid ").count(), 12, "{log}");
    log.lines()
        .filter_map(|line| line.split_once(" pid ").map(|(_, pid)| pid))
        .collect::<std::collections::BTreeSet<&str>>()
        .len()
}

/// The attempts of a run on one worker share the run's database connections, as in one
/// process: twelve loads on a worker of two slots use at most two connections to the
/// warehouse (each attempt used to connect, and log in, afresh). And the pool is as big as the
/// worker's slots: twelve loads that hold their connection at once on a worker of twelve
/// slots get twelve, none waiting for another's (a fixed pool of eight made four wait, and
/// fail once the wait passed the connect timeout).
#[test]
fn attempts_of_a_run_on_a_worker_share_its_database_connections() {
    let (sandbox, db) = sandbox("dist-shared-pools");
    let warehouse = PgDatabase::create();
    sandbox.write(
        "pipeline.toml",
        &format!(
            "[state]\nurl = \"{}\"\n\n[databases]\nwarehouse = \"{}\"\n",
            db.url, warehouse.url
        ),
    );
    let tables: Vec<String> = (0..12).map(|n| format!("t{n}")).collect();
    sandbox.write("tables.txt", &tables.join("\n"));
    let shared = warehouse_connections(&sandbox, "2026-11-01", "2", "");
    // Two at once at most, and sqlx's pool checks a connection with a round trip when it
    // takes it back: an attempt that starts meanwhile gets another. Up to twice the slots.
    assert!(
        (1..=4).contains(&shared),
        "{shared} connections for 12 attempts"
    );
    let at_once = warehouse_connections(&sandbox, "2026-11-02", "12", "2");
    assert_eq!(at_once, 12, "12 loads at once on 12 slots");
}

#[test]
fn a_worker_whose_stderr_is_gone_still_stops_on_sigterm() {
    let (sandbox, _db) = sandbox("dist-stderr");
    let mut child = worker(&sandbox, PIPELINE, &[]);
    wait_for_workers(&sandbox, PIPELINE, 1);
    // What a crashed log collector leaves: every write to stderr fails with a broken pipe.
    drop(child.stderr.take());
    drop(child.stdout.take());
    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the worker") {
            break status;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the worker");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
