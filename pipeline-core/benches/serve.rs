//! Web view benchmark: a run of 5,000 no-op tasks in a SQLite state store, then the time
//! `daily serve` takes to answer its run page (the graph laid out and drawn as SVG on the
//! server, the timeline, the task table), with families collapsed (the default) and all
//! expanded, and its JSON; and, with every task writing a table of its own and reading its
//! dependencies', the tables page (the lineage drawn, each table's last load read from the
//! store) and its JSON. Measured through a real HTTP request to the in-process server.
//!
//! `cargo bench -p pipeline-core --features web --bench serve [-- --tasks N]`. Target: every
//! page under 1 s at 5,000 tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_core::date::Date;
use pipeline_core::testing::{Config, Setting};
use pipeline_core::testing::{Quiet, RunOptions, Runner, open_store};
use pipeline_core::testing::{ServeOptions, serve};
use pipeline_core::{Dag, TaskSpec};
use tokio::sync::watch;

mod shapes;

const DEFAULT_TASKS: usize = 5_000;
/// Requests per page; the median is reported.
const REPEATS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let tasks: usize = shapes::flag("--tasks").map_or(DEFAULT_TASKS, |n| {
        n.parse().expect("--tasks takes a number")
    });
    println!(
        "web view benchmark: one run of {tasks} no-op tasks, SQLite state store, median of {REPEATS}"
    );
    println!(
        "{:<16} {:<24} {:>10} {:>10}",
        "shape", "page", "answer", "size"
    );
    let mut cases: Vec<(String, Dag)> = shapes::SHAPES
        .iter()
        .map(|shape| (shape.to_string(), build(shape, tasks, false, false)))
        .collect();
    cases.push((
        "layered+families".into(),
        build("layered", tasks, true, false),
    ));
    cases.push((
        "layered+tables".into(),
        build("layered", tasks, false, true),
    ));
    for (name, dag) in cases {
        runtime.block_on(case(&name, dag));
    }
}

/// A graph of `shape`; with `families`, every 100 tasks form a family; with `tables`, task
/// `t<i>` writes table `warehouse.t<i>` and reads its dependencies' tables.
fn build(shape: &str, tasks: usize, families: bool, tables: bool) -> Dag {
    let mut builder = Dag::builder();
    for (i, deps) in shapes::dependencies(shape, tasks).into_iter().enumerate() {
        let mut spec = TaskSpec::new(format!("t{i}"), |_ctx| Box::pin(async { Ok(()) }))
            .requires(deps.iter().map(|j| format!("t{j}")));
        if families {
            spec = spec.family(format!("family{}", i / 100));
        }
        if tables {
            spec = spec
                .writes([format!("warehouse.t{i}")])
                .reads(deps.iter().map(|j| format!("warehouse.t{j}")));
        }
        builder.task(spec);
    }
    builder.build().expect("a valid DAG")
}

async fn case(name: &str, dag: Dag) {
    let declares_tables = !dag.lineage().tables.is_empty();
    let dir = std::env::temp_dir().join(format!("pipeline-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut config = Config::embedded();
    config.state = Setting {
        url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        source: "the benchmark".into(),
    };
    let runner = Runner {
        dag: Arc::new(dag),
        store: open_store(&config).await.expect("the state store"),
        config: config.clone(),
        pipeline: "bench".into(),
        pools: Default::default(),
    };
    let (_stop, cancel) = watch::channel(false);
    let report = runner
        .run(
            &RunOptions::new(Date::from_ymd(2026, 11, 26).expect("a date")),
            &Quiet,
            cancel.clone(),
        )
        .await
        .expect("the run");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let options = ServeOptions {
        addr: format!("127.0.0.1:{port}").parse().expect("an address"),
        allow_actions: false,
        token: None,
    };
    let server = tokio::spawn(serve(runner, Vec::new(), options, cancel));
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = reqwest::Client::new();
    let id = report.run_id;
    let mut pages = vec![
        ("run page", format!("/runs/{id}")),
        ("run page, all expanded", format!("/runs/{id}?expand=*")),
        ("run JSON", format!("/api/runs/{id}")),
        ("task page", format!("/runs/{id}/tasks/t0")),
    ];
    if declares_tables {
        pages.push(("tables page", "/lineage".into()));
        pages.push(("tables JSON", "/api/lineage".into()));
    }
    for (page, path) in pages {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..REPEATS {
            let started = Instant::now();
            let response = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .expect("an answer");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            size = response.bytes().await.expect("the body").len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{name:<16} {page:<24} {:>7.0} ms {:>7} KB",
            times[REPEATS / 2].as_secs_f64() * 1000.0,
            size / 1024
        );
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
