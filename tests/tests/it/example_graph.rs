//! The `daily` example's graph as the registry builds it.

use pipeline_core::Dag;
use pipeline_example as _;

#[test]
fn the_example_graph_has_its_family_and_soft_dependency() {
    let dag = Dag::from_registry().expect("the example graph is valid");
    let model = dag.task(dag.id("make_order_model").expect("model"));
    let requires: Vec<&str> = model
        .requires
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    assert_eq!(
        requires,
        [
            "load[users]",
            "load[restaurants]",
            "load[orders]",
            "orders_have_unique_ids"
        ]
    );
    let after: Vec<&str> = model
        .after
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    assert_eq!(after, ["load_currency"]);
    assert_eq!(dag.select("load").expect("family").len(), 3);
    let report = dag.id("make_management_report").expect("report");
    // Everything but the check of the report, the dashboard's counts and the order events
    // leads to the report.
    assert_eq!(dag.upstream(&[report]).len(), dag.len() - 3);
    // The hourly counts need the loads (and their blocking check), nothing of the model.
    let counts = dag.id("count_orders_by_city").expect("counts");
    let mut upstream: Vec<&str> = dag
        .upstream(&[counts])
        .into_iter()
        .map(|id| dag.task(id).name.as_str())
        .collect();
    upstream.sort_unstable();
    assert_eq!(
        upstream,
        [
            "count_orders_by_city",
            "load[orders]",
            "load[restaurants]",
            "load[users]",
            "orders_have_unique_ids"
        ]
    );
    // The blocking check of the loads stands between them and the model.
    let model_deps: Vec<&str> = model
        .requires
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    assert!(
        model_deps.contains(&"orders_have_unique_ids"),
        "{model_deps:?}"
    );
}
