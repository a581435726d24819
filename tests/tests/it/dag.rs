//! The graph built from data: the same validation rules as the registry, and its queries.

use pipeline_core::testing::{GraphFormat, TaskId};
use pipeline_core::{Dag, DagError, TaskSpec};

fn noop(name: &str) -> TaskSpec {
    TaskSpec::new(name, |_ctx| Box::pin(async { Ok(()) }))
}

fn build(specs: Vec<TaskSpec>) -> Result<Dag, DagError> {
    let mut builder = Dag::builder();
    for spec in specs {
        builder.task(spec);
    }
    builder.build()
}

fn names(dag: &Dag, ids: &[TaskId]) -> Vec<String> {
    ids.iter().map(|&id| dag.task(id).name.clone()).collect()
}

/// extract_a, extract_b -> transform -> report, with a soft `audit` after transform.
fn sample() -> Dag {
    build(vec![
        noop("report").requires(["transform"]),
        noop("extract_b"),
        noop("transform").requires(["extract_a", "extract_b"]),
        noop("extract_a"),
        noop("audit").after(["transform"]),
        noop("unrelated"),
    ])
    .expect("valid graph")
}

#[test]
fn each_task_lists_its_direct_dependents_hard_and_soft_in_id_order() {
    let dag = sample();
    let dependents = dag.dependents();
    let of = |name: &str| names(&dag, dependents.of(dag.id(name).expect("a task")));
    assert_eq!(of("transform"), ["report", "audit"]);
    assert_eq!(of("extract_a"), ["transform"]);
    assert_eq!(of("extract_b"), ["transform"]);
    assert!(of("report").is_empty() && of("unrelated").is_empty() && of("audit").is_empty());
}

#[test]
fn topological_order_puts_dependencies_first_and_is_stable() {
    let dag = sample();
    let order = names(&dag, &dag.topological_order());
    assert_eq!(
        order,
        [
            "extract_b",
            "extract_a",
            "transform",
            "report",
            "audit",
            "unrelated"
        ]
    );
    assert_eq!(dag.topological_order(), dag.topological_order());
}

#[test]
fn upstream_closure_follows_requires_and_after() {
    let dag = sample();
    let id = |name| dag.id(name).expect(name);
    assert_eq!(
        names(&dag, &dag.upstream(&[id("report")])),
        ["report", "extract_b", "transform", "extract_a"]
    );
    assert_eq!(
        names(&dag, &dag.upstream(&[id("audit")])),
        ["extract_b", "transform", "extract_a", "audit"]
    );
    assert_eq!(
        names(&dag, &dag.upstream(&[id("unrelated")])),
        ["unrelated"]
    );
}

#[test]
fn downstream_lists_every_dependent() {
    let dag = sample();
    let id = |name| dag.id(name).expect(name);
    assert_eq!(
        names(&dag, &dag.downstream(id("extract_a"))),
        ["report", "transform", "audit"]
    );
    assert!(dag.downstream(id("report")).is_empty());
}

#[test]
fn unknown_dependency_is_named_with_a_suggestion() {
    let err = build(vec![
        noop("load_orders"),
        noop("model").requires(["load_order"]),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `model` depends on unknown task `load_order`; did you mean `load_orders`?"
    );
    let err = build(vec![noop("model").after(["vacuum"])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `model` depends on unknown task `vacuum`"
    );
}

#[test]
fn duplicate_names_are_rejected() {
    let err = build(vec![noop("load"), noop("other"), noop("load")]).unwrap_err();
    assert!(
        matches!(err, DagError::DuplicateName { ref name, .. } if name == "load"),
        "{err}"
    );
}

#[test]
fn cycles_are_named_in_order_from_the_smallest_task() {
    let err = build(vec![
        noop("start").requires(["c"]),
        noop("c").requires(["b"]),
        noop("b").after(["d"]),
        noop("d").requires(["c"]),
    ])
    .unwrap_err();
    assert_eq!(err.to_string(), "task dependency cycle: b -> d -> c -> b");

    let err = build(vec![noop("a").requires(["a"])]).unwrap_err();
    assert_eq!(
        err,
        DagError::Cycle {
            path: vec!["a".into(), "a".into()]
        }
    );
}

#[test]
fn empty_graphs_and_bad_names_are_rejected() {
    assert_eq!(build(vec![]).unwrap_err(), DagError::Empty);
    for bad in ["", " padded", "tab\there"] {
        let err = build(vec![noop(bad)]).unwrap_err();
        assert!(
            matches!(err, DagError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn unknown_names_on_the_command_line_get_a_suggestion() {
    let dag = sample();
    assert_eq!(
        dag.select("transfrom").unwrap_err().to_string(),
        "unknown task `transfrom`; did you mean `transform`?"
    );
    assert_eq!(names(&dag, &dag.select("audit").expect("known")), ["audit"]);
}

#[test]
fn renders_dot_and_mermaid() {
    let dag = build(vec![
        noop("load[users]"),
        noop("say \"hi\"").requires(["load[users]"]),
        noop("report").after(["say \"hi\""]),
    ])
    .expect("valid graph");
    assert_eq!(
        dag.render(GraphFormat::Dot),
        r#"digraph pipeline {
    rankdir=LR;
    node [shape=box];
    "load[users]";
    "say \"hi\"";
    "report";
    "load[users]" -> "say \"hi\"";
    "say \"hi\"" -> "report" [style=dashed];
}
"#
    );
    assert_eq!(
        dag.render(GraphFormat::Mermaid),
        "flowchart LR\n    t0[\"load[users]\"]\n    t1[\"say #quot;hi#quot;\"]\n    t2[\"report\"]\n    t0 --> t1\n    t1 -.-> t2\n"
    );
}

#[test]
fn large_layered_graphs_build_quickly_enough_to_be_useful() {
    // 20 layers of 500: each task requires 3 tasks of the previous layer.
    let width = 500;
    let mut specs = Vec::new();
    for layer in 0..20 {
        for i in 0..width {
            let mut spec = noop(&format!("t{layer}_{i}"));
            if layer > 0 {
                spec = spec.requires(
                    (0..3).map(|k| format!("t{}_{}", layer - 1, (i * 7 + k * 13) % width)),
                );
            }
            specs.push(spec);
        }
    }
    let dag = build(specs).expect("valid graph");
    assert_eq!(dag.topological_order().len(), 10_000);
    let last = dag.id("t19_0").expect("task");
    assert!(dag.upstream(&[last]).len() > 19);
}

#[test]
fn a_blocking_check_holds_back_the_tasks_that_require_its_target() {
    let dag = build(vec![
        noop("load"),
        noop("fresh").checks("load", true),
        noop("counted").checks("load", false),
        noop("model").requires(["load"]),
        noop("audit").after(["load"]),
    ])
    .expect("valid graph");
    let id = |name: &str| dag.select(name).expect("known")[0];
    let model = dag.task(id("model"));
    assert_eq!(names(&dag, &model.requires), ["load", "fresh"]);
    assert_eq!(
        names(&dag, &dag.task(id("audit")).requires),
        Vec::<String>::new(),
        "an `after` dependency does not wait for checks"
    );
    assert_eq!(
        names(&dag, &dag.task(id("counted")).requires),
        ["load"],
        "checks of one target do not wait for each other"
    );
    let role = dag.task(id("fresh")).check.clone().expect("a check");
    assert!(role.blocking);
    assert_eq!(names(&dag, &role.targets), ["load"]);
}

/// A warehouse of three layers: a load, a model on it, a report on the model.
fn warehouse(report_requires: &[&str]) -> Vec<TaskSpec> {
    vec![
        noop("load_orders")
            .reads(["replica.orders"])
            .writes(["warehouse.orders"]),
        noop("load_users")
            .reads(["replica.users"])
            .writes(["warehouse.users"]),
        noop("order_model")
            .requires(["load_orders", "load_users"])
            .reads(["warehouse.orders", "warehouse.users"])
            .writes(["warehouse.order_model"]),
        noop("report")
            .requires(report_requires.iter().copied())
            .reads(["warehouse.order_model", "warehouse.orders"])
            .writes(["warehouse.report"]),
    ]
}

#[test]
fn a_read_of_a_table_whose_writer_is_upstream_directly_or_not_is_allowed() {
    // `report` reads `orders` through the model's own requirement of the load.
    let dag = build(warehouse(&["order_model"])).expect("valid lineage");
    let lineage = dag.lineage();
    let orders = &lineage.tables["warehouse.orders"];
    assert_eq!(names(&dag, &orders.writers), ["load_orders"]);
    assert_eq!(names(&dag, &orders.readers), ["order_model", "report"]);
    assert!(lineage.tables["replica.orders"].is_source());
    assert!(!orders.is_source());
    // A soft dependency orders the writer first too.
    let mut specs = warehouse(&[]);
    specs[3] = noop("report")
        .after(["order_model"])
        .reads(["warehouse.order_model", "warehouse.orders"]);
    build(specs).expect("`after` orders the writer first");
}

#[test]
fn a_read_without_its_writer_upstream_is_refused_naming_table_writer_and_fix() {
    let err = build(warehouse(&["load_users"])).expect_err("report does not require the model");
    assert_eq!(
        err,
        DagError::UnrequiredWriter {
            task: "report".into(),
            table: "warehouse.order_model".into(),
            writer: "order_model".into(),
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("add `order_model` to its `requires`"),
        "{message}"
    );
}

#[test]
fn two_writers_of_a_table_must_be_ordered_and_a_family_writes_as_one() {
    let unordered = build(vec![
        noop("load_orders").writes(["warehouse.orders"]),
        noop("backfill_orders").writes(["warehouse.orders"]),
    ])
    .expect_err("two writers in no order");
    assert!(
        matches!(&unordered, DagError::UnorderedWriters { table, .. } if table == "warehouse.orders"),
        "{unordered:?}"
    );
    build(vec![
        noop("load_orders").writes(["warehouse.orders"]),
        noop("backfill_orders")
            .requires(["load_orders"])
            .writes(["warehouse.orders"]),
        noop("fix_orders")
            .requires(["backfill_orders"])
            .writes(["warehouse.orders"]),
        noop("model")
            .requires(["fix_orders"])
            .reads(["warehouse.orders"]),
    ])
    .expect("ordered writers, and a reader after all of them");
    // Members of one family declare the family's tables, and read their own.
    let member = |key: &str| {
        noop(&format!("load[{key}]"))
            .family("load")
            .reads(["warehouse.orders"])
            .writes(["warehouse.orders", "warehouse.users"])
    };
    build(vec![
        member("orders"),
        member("users"),
        noop("model").requires(["load"]).reads(["warehouse.users"]),
    ])
    .expect("a family writes its tables as one");
}

#[test]
fn lineage_renders_for_people_and_for_tools() {
    use pipeline_core::testing::LineageFormat;
    let dag = build(warehouse(&["order_model"])).expect("valid lineage");
    let text = dag.render_lineage(LineageFormat::Text);
    assert!(
        text.contains("replica.orders         source; read by load_orders\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "warehouse.orders       written by load_orders; read by order_model, report\n"
        ),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&dag.render_lineage(LineageFormat::Json)).expect("JSON");
    assert_eq!(json["tables"][0]["name"], "replica.orders");
    assert_eq!(json["tables"][0]["source"], true);
    assert_eq!(
        json["tasks"][3]["writes"],
        serde_json::json!(["warehouse.report"])
    );
    let dot = dag.render_lineage(LineageFormat::Dot);
    assert!(
        dot.contains("\"warehouse.orders\" [shape=cylinder];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"load_orders\" -> \"warehouse.orders\";"),
        "{dot}"
    );
    assert!(dot.contains("\"warehouse.orders\" -> \"report\";"), "{dot}");
    let mermaid = dag.render_lineage(LineageFormat::Mermaid);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("[(\"warehouse.orders\")]"), "{mermaid}");
}

#[test]
fn a_table_of_many_readers_is_checked_for_each_of_them() {
    let readers = |requiring: &dyn Fn(usize) -> bool| {
        let mut specs = vec![
            noop("load_orders").writes(["warehouse.orders"]),
            noop("other"),
        ];
        for i in 0..20 {
            let dependency = if requiring(i) { "load_orders" } else { "other" };
            specs.push(
                noop(&format!("report_{i}"))
                    .requires([dependency])
                    .reads(["warehouse.orders"]),
            );
        }
        build(specs)
    };
    readers(&|_| true).expect("every reader requires the writer");
    let err = readers(&|i| i != 13).expect_err("report_13 does not");
    assert_eq!(
        err,
        DagError::UnrequiredWriter {
            task: "report_13".into(),
            table: "warehouse.orders".into(),
            writer: "load_orders".into(),
        }
    );
}
