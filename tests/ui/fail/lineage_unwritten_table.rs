use pipeline_core::prelude::*;

tables! {
    pub warehouse { orders, order_model }
}

// No task writes `warehouse.orders`, and the warehouse is no source.
#[task(reads = [warehouse::orders], writes = [warehouse::order_model])]
async fn make_order_model(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

// A table that is not declared at all.
#[task(reads = [warehouse::ordres])]
async fn count_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
