// Every key, a family, dependencies across modules, and the graph the registry makes of them.
use pipeline_core::prelude::*;
use pipeline_core::{Dag, Task};

const TABLES: &[&str] = &["users", "orders"];

tables! {
    /// The production replica: only read.
    pub source replica { users, orders }
    pub warehouse {
        users,
        /// Grows; loaded by its largest id.
        orders,
        currency_rates,
        order_model,
        report,
    }
}

mod loads {
    use pipeline_core::prelude::*;

    use crate::{replica, warehouse};

    pool!(pub ProductionReplica, 3);

    /// Copies one table.
    #[task(
        for_each = super::TABLES,
        retries = 3,
        retry_delay = "30s",
        timeout = "1h30m",
        pool = ProductionReplica,
        priority = 5,
        // Its own `orders` too: the largest id loaded so far.
        reads = [replica::users, replica::orders, warehouse::orders],
        writes = [warehouse::users, warehouse::orders]
    )]
    pub async fn load(_ctx: &Ctx, _table: &str) -> Result<()> {
        Ok(())
    }

    /// Rates from an API; may fail.
    #[task(critical = false, retries = 5, writes = [warehouse::currency_rates])]
    pub async fn load_currency(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

/// The model.
///
/// Built nightly.
#[task(
    requires = [loads::Load],
    after = [loads::LoadCurrency],
    critical,
    name = "order_model",
    reads = [warehouse::users, warehouse::orders, warehouse::currency_rates],
    writes = [warehouse::order_model]
)]
pub(crate) async fn make_order_model(ctx: &Ctx) -> Result<()> {
    let _ = ctx.task();
    Ok(())
}

// `orders` through the model's own requirement of the loads.
#[task(
    requires = [MakeOrderModel],
    critical = true,
    reads = [warehouse::order_model, warehouse::orders],
    writes = [warehouse::report]
)]
async fn report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

/// The model has rows.
#[check(on = MakeOrderModel, severity = "error", blocking, reads = [warehouse::order_model])]
async fn model_has_rows(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("1 row").with_value(1.0))
}

/// A gentle check, not blocking.
#[check(on = MakeOrderModel, name = "model_looks_fine", timeout = "1m")]
async fn model_looks_fine(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::expect(true, "fine"))
}

fn main() {
    assert_eq!(MakeOrderModel::name(), "order_model");
    let dag = Dag::from_registry().expect("valid graph");
    let names: Vec<&str> = dag.tasks().map(|(_, t)| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "load[users]",
            "load[orders]",
            "load_currency",
            "model_has_rows",
            "model_looks_fine",
            "order_model",
            "report"
        ]
    );
    let model = dag.task(dag.id("order_model").expect("model"));
    assert_eq!(model.requires.len(), 2);
    assert_eq!(model.after.len(), 1);
    assert_eq!(&*model.description, "The model.\n\nBuilt nightly.");
    let load = dag.task(dag.id("load[orders]").expect("member"));
    assert_eq!(load.policy.retries, 3);
    assert_eq!(load.policy.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(load.pool.as_deref(), Some("production_replica"));
    assert_eq!(load.priority, 5);
    let pools = pipeline_core::testing::pools().expect("pools");
    assert_eq!(
        pools.get("production_replica").map(|pool| pool.size),
        Some(3)
    );
    assert!(
        !dag.task(dag.id("load_currency").expect("currency"))
            .policy
            .critical
    );
    // The report requires the model, so it also waits for the model's blocking check.
    let report = dag.task(dag.id("report").expect("report"));
    let report_deps: Vec<&str> = report
        .requires
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    assert_eq!(report_deps, ["order_model", "model_has_rows"]);
    let gentle = dag.task(dag.id("model_looks_fine").expect("check"));
    assert!(!gentle.policy.critical);
    assert_eq!(
        gentle.requires.len(),
        1,
        "checks do not wait for each other"
    );
    assert!(
        dag.task(dag.id("model_has_rows").expect("check"))
            .policy
            .critical
    );
}
