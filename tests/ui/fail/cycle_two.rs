use pipeline_core::prelude::*;

#[task(requires = [LoadUsers])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [LoadOrders])]
async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
