use pipeline_core::prelude::*;

#[task(requires = [LoadOrders])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
