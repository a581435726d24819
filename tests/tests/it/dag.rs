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
