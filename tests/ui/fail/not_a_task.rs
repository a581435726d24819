use pipeline_core::prelude::*;

struct Orders;

#[task(requires = [Orders])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
