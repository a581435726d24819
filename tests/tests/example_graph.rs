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
        ["load[users]", "load[restaurants]", "load[orders]"]
    );
    let after: Vec<&str> = model
        .after
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    assert_eq!(after, ["load_currency"]);
    assert_eq!(dag.select("load").expect("family").len(), 3);
    let report = dag.id("make_management_report").expect("report");
    assert_eq!(dag.upstream(&[report]).len(), dag.len());
}
