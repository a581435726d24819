use pipeline_core::prelude::*;

#[task(retries = 3, timeout = "1h", retries = 5)]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
