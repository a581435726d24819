use pipeline_core::prelude::*;

tables! {
    pub source replica { orders, users }
    pub warehouse { orders, users, order_model }
}

#[task(reads = [replica::orders], writes = [warehouse::orders])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(reads = [replica::users], writes = [warehouse::users])]
async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

// Reads the orders, but requires only the users: fine on a warm database, wrong at 5 a.m.
#[task(
    requires = [LoadUsers],
    reads = [warehouse::users, warehouse::orders],
    writes = [warehouse::order_model]
)]
async fn make_order_model(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
