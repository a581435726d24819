//! The API loader against a local HTTP server that misbehaves on purpose, through the real
//! executor and a real SQLite warehouse. Whatever goes wrong, nothing partial is written.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_core::TaskSpec;
use pipeline_core::api::{ApiReport, Limits};
use pipeline_core::date::Date;
use pipeline_core::sqlx::{self, SqlitePool};
use pipeline_core::testing::Config;
use pipeline_core::testing::TaskStatus;
use pipeline_tests::Sandbox;
use pipeline_tests::http_stub::{Reply, StubServer};

#[derive(serde::Deserialize, serde::Serialize)]
struct Rate {
    date: String,
    currency: String,
    eur_rate: f64,
}

struct Api {
    server: StubServer,
    sandbox: Sandbox,
    config: Config,
}

fn quick() -> Limits {
    Limits {
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(20),
        attempts: 3,
        retry_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        max_body_bytes: 64 * 1024,
        max_pages: 10,
    }
}

impl Api {
    fn new() -> Api {
        let sandbox = Sandbox::new("api");
        let warehouse = format!(
            "sqlite://{}?mode=rwc",
            sandbox.path("warehouse.db").display()
        );
        let config = sandbox.config(&[("warehouse", &warehouse)]);
        Api {
            server: StubServer::start(),
            sandbox,
            config,
        }
    }

    /// Loads `/rates` (cursor pagination) into `currency_rates`.
    async fn load(&self, limits: Limits) -> Result<ApiReport, String> {
        self.load_with_key(limits, "").await
    }

    /// A load that sends `key` (when not empty) as its `Authorization` header.
    async fn load_with_key(&self, limits: Limits, key: &str) -> Result<ApiReport, String> {
        let url = self.server.url("/rates?api_key=SECRET123");
        let seen: Arc<Mutex<Option<ApiReport>>> = Arc::default();
        let out = Arc::clone(&seen);
        let key = key.to_string();
        let spec = TaskSpec::new("load_rates", move |ctx| {
            let (url, out, limits, key) =
                (url.clone(), Arc::clone(&out), limits.clone(), key.clone());
            Box::pin(async move {
                let mut load = ctx.load_api::<Rate>(&url);
                if !key.is_empty() {
                    load = load.header("Authorization", &key);
                }
                let report = load
                    .rows_at("/data")
                    .cursor("cursor", "/next")
                    .into_table("currency_rates", &["date", "currency"])
                    .limits(limits)
                    .run()
                    .await?;
                *out.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(report);
                Ok(())
            })
        });
        let task = pipeline_tests::run_task(&self.config, spec, false).await;
        let error = task.error.clone().unwrap_or_default();
        assert!(
            !error.contains("SECRET123"),
            "the URL's token leaked: {error}"
        );
        if task.status == TaskStatus::Succeeded {
            Ok(seen.lock().expect("lock").clone().expect("report"))
        } else {
            Err(error)
        }
    }

    async fn rates(&self) -> Vec<(String, String, f64)> {
        let pool = SqlitePool::connect(&format!(
            "sqlite://{}?mode=rwc",
            self.sandbox.path("warehouse.db").display()
        ))
        .await
        .expect("open");
        let exists: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'currency_rates'",
        )
        .fetch_one(&pool)
        .await
        .expect("q");
        if !exists {
            return Vec::new();
        }
        sqlx::query_as(
            "SELECT date, currency, eur_rate FROM currency_rates ORDER BY date, currency",
        )
        .fetch_all(&pool)
        .await
        .expect("rows")
    }
}

fn page(rows: &[(&str, &str, f64)], next: Option<&str>) -> Reply {
    let rows: Vec<serde_json::Value> =
        rows.iter().map(|(d, c, r)| serde_json::json!({ "date": d, "currency": c, "eur_rate": r, "source": "stub" })).collect();
    Reply::json(&serde_json::json!({ "data": rows, "next": next }).to_string())
}

#[tokio::test]
async fn pages_are_loaded_deduplicated_and_upserted() {
    let api = Api::new();
    api.server.script([
        page(
            &[("2026-11-26", "SEK", 0.087), ("2026-11-26", "NOK", 0.085)],
            Some("p2"),
        ),
        page(
            &[("2026-11-26", "USD", 0.95), ("2026-11-26", "SEK", 0.088)],
            None,
        ),
    ]);
    let report = api.load(quick()).await.expect("load");
    assert_eq!(
        (report.pages, report.rows),
        (2, 3),
        "SEK appears twice; the last one wins"
    );
    assert_eq!(
        api.rates().await,
        [
            ("2026-11-26".into(), "NOK".into(), 0.085),
            ("2026-11-26".into(), "SEK".into(), 0.088),
            ("2026-11-26".into(), "USD".into(), 0.95)
        ]
    );
    let requests = api.server.requests();
    assert_eq!(requests[1].path, "/rates?api_key=SECRET123&cursor=p2");
    let pool = SqlitePool::connect(&format!(
        "sqlite://{}",
        api.sandbox.path("warehouse.db").display()
    ))
    .await
    .expect("open");
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('currency_rates') ORDER BY cid")
            .fetch_all(&pool)
            .await
            .expect("columns");
    assert_eq!(
        columns,
        ["date", "currency", "eur_rate"],
        "the struct's order"
    );

    api.server
        .script([page(&[("2026-11-26", "SEK", 0.09)], None)]);
    api.load(quick()).await.expect("second load");
    let sek: Vec<f64> = api
        .rates()
        .await
        .into_iter()
        .filter(|r| r.1 == "SEK")
        .map(|r| r.2)
        .collect();
    assert_eq!(sek, [0.09], "replaced by key, not duplicated");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let api = Api::new();
    // Whole seconds, and about a second passes before the 503: the wait is 2 to 3 seconds.
    let date = httpdate_in(Duration::from_secs(3));
    api.server.script([
        Reply::status(500),
        Reply::Status(429, vec![("Retry-After".into(), "1".into())], String::new()),
        Reply::Status(503, vec![("Retry-After".into(), date)], String::new()),
        Reply::status(408),
        page(&[("2026-11-26", "SEK", 0.087)], None),
    ]);
    let limits = Limits {
        attempts: 5,
        ..quick()
    };
    let report = api.load(limits).await.expect("load after retries");
    assert_eq!(report.rows, 1);
    assert_eq!(api.server.requests().len(), 5);
    // The client waited as each Retry-After said: 1 s, then until the date.
    let at: Vec<Instant> = api.server.requests().iter().map(|r| r.at).collect();
    assert!(
        at[2] - at[1] >= Duration::from_millis(950),
        "Retry-After in seconds: {:?}",
        at[2] - at[1]
    );
    assert!(
        at[3] - at[2] >= Duration::from_millis(1500),
        "Retry-After as a date: {:?}",
        at[3] - at[2]
    );
}

#[tokio::test]
async fn a_huge_retry_after_fails_at_once() {
    let api = Api::new();
    api.server.otherwise(Reply::retry_after(36_000));
    let started = Instant::now();
    let err = api.load(quick()).await.expect_err("not waiting ten hours");
    assert!(
        err.contains("asks to wait 10h00m (Retry-After), more than the 5.0s this load allows"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(api.server.requests().len(), 1);
}

#[tokio::test]
async fn hangs_trickles_and_truncated_bodies_fail_cleanly() {
    let body = serde_json::json!({ "data": [{ "date": "2026-11-26", "currency": "SEK", "eur_rate": 0.087 }], "next": null }).to_string();
    let cases = [
        (
            "hang",
            Reply::Hang,
            "stalled: no data for 300ms (Limits::read_timeout)",
        ),
        (
            "trickle",
            Reply::Trickle(body.clone(), Duration::from_millis(60)),
            "took longer than the request limit of 1.0s (Limits::request_timeout)",
        ),
        (
            "truncated",
            Reply::Truncated(body[..40].to_string(), body.len()),
            "was cut short",
        ),
    ];
    for (name, reply, expected) in cases {
        let api = Api::new();
        api.server.otherwise(reply);
        let err = api.load(quick()).await.expect_err(name);
        assert!(
            err.contains(expected) && err.contains("gave up after 3 attempts"),
            "{name}: {err}"
        );
        assert!(err.contains("nothing was written"), "{name}: {err}");
        assert!(api.rates().await.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn bad_content_is_an_error_that_says_where_and_writes_nothing() {
    let good = page(&[("2026-11-26", "SEK", 0.087)], Some("p2"));
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "malformed",
            Reply::json("{\"data\": [ {\"date\": \"2026-11-26\", "),
            "page 2: the response is not valid JSON",
        ),
        (
            "drift",
            Reply::json(
                r#"{"data": [{"date": "2026-11-26", "currency": "NOK", "eur_rate": "0.085"}], "next": null}"#,
            ),
            "page 2, row 0: field `eur_rate` does not match: invalid type: string \"0.085\", expected f64",
        ),
        (
            "no rows",
            Reply::json(r#"{"items": []}"#),
            "page 2: no array of rows at `/data`",
        ),
        (
            "too large",
            Reply::json(&format!(
                "{{\"data\": [], \"pad\": \"{}\"}}",
                "x".repeat(70_000)
            )),
            "larger than the 65536-byte limit",
        ),
        (
            "not found",
            Reply::status(404),
            "the API answered 404 Not Found",
        ),
    ];
    for (name, bad, expected) in cases {
        let api = Api::new();
        api.server.script([good.clone(), bad]);
        let err = api.load(quick()).await.expect_err(name);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            api.rates().await.is_empty(),
            "{name}: page 1 must not be written alone"
        );
    }
}

#[tokio::test]
async fn endless_pagination_is_stopped() {
    let api = Api::new();
    api.server.script([
        page(&[], Some("a")),
        page(&[], Some("b")),
        page(&[], Some("a")),
    ]);
    let err = api.load(quick()).await.expect_err("a repeated cursor");
    assert!(err.contains("returned the cursor \"a\" again"), "{err}");

    let api = Api::new();
    api.server
        .script((0..12).map(|i| page(&[], Some(&format!("c{i}")))));
    let err = api.load(quick()).await.expect_err("too many pages");
    assert!(err.contains("more than 10 pages"), "{err}");
}

/// An HTTP date `after` from now.
fn httpdate_in(after: Duration) -> String {
    let at = std::time::SystemTime::now() + after + Duration::from_secs(1);
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let date = Date::from_ymd(1970, 1, 1).expect("epoch");
    let mut day = date;
    for _ in 0..secs / 86_400 {
        day = day.next();
    }
    let (y, m, d) = day.ymd();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = secs % 86_400;
    format!(
        "Thu, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        MONTHS[m as usize - 1],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[tokio::test]
async fn api_keys_never_go_to_another_origin_nor_show_in_errors() {
    const KEY: &str = "Bearer k3y-of-the-api";
    let api = Api::new();
    let elsewhere = StubServer::start();
    elsewhere.otherwise(Reply::json(r#"{"data": [], "next": null}"#));
    api.server.otherwise(Reply::Status(
        302,
        vec![("Location".into(), elsewhere.url("/collect"))],
        String::new(),
    ));
    let err = api
        .load_with_key(quick(), KEY)
        .await
        .expect_err("a redirect to another origin");
    assert!(err.contains("redirected to another origin"), "{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the other host"
    );

    let api = Api::new();
    api.server.otherwise(Reply::Status(
        401,
        Vec::new(),
        format!("invalid credentials: {KEY}"),
    ));
    let err = api.load_with_key(quick(), KEY).await.expect_err("refused");
    assert!(err.contains("401") && err.contains("***"), "{err}");
    assert!(!err.contains("k3y-of-the-api"), "{err}");
}

#[tokio::test]
async fn the_total_limit_bounds_the_whole_load() {
    let api = Api::new();
    api.server.otherwise(Reply::Hang);
    let limits = Limits {
        total_timeout: Duration::from_millis(800),
        attempts: 10,
        ..quick()
    };
    let started = Instant::now();
    let err = api.load(limits).await.expect_err("a hanging API");
    assert!(
        err.contains("took longer than its total limit of 800ms (Limits::total_timeout)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
