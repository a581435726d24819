use pipeline_core::prelude::*;

#[task(timeout = "15 minutes")]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
