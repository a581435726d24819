//! Loads from the production read replica.

use pipeline_core::prelude::*;

use crate::demo;
use crate::tables::{replica, warehouse};

/// The tables copied from the read replica, one task each: `load[users]`, ...
pub const REPLICA_TABLES: &[&str] = &["users", "restaurants", "orders"];

pool!(
    /// The production read replica serves the shop too: at most two loads read it at once
    /// (`[pools] replica = 4` in pipeline.toml allows more).
    pub Replica, 2
);

/// Copies one table from the read replica into the warehouse: `orders` grows, so only its new
/// rows are loaded while its schema stays the same; the small tables are rebuilt every night.
/// Every load is atomic: readers see the old table or the new one.
#[task(
    for_each = REPLICA_TABLES,
    retries = 3,
    retry_delay = "30s",
    timeout = "15m",
    pool = Replica,
    // Its own `orders` too: the largest id loaded so far.
    reads = [replica::users, replica::restaurants, replica::orders, warehouse::orders],
    writes = [warehouse::users, warehouse::restaurants, warehouse::orders]
)]
pub async fn load(ctx: &Ctx, table: &str) -> Result<()> {
    let mut load = ctx.load_table(table);
    if !ctx.has_db("replica") {
        demo::ensure_replica().await?;
        load = load.from_sqlite_file(demo::path());
    }
    if table == "orders" {
        load = load.incremental_by("id");
    }
    load.run().await?;
    Ok(())
}
