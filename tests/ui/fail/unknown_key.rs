use pipeline_core::prelude::*;

#[task(retries = 3, depends_on = [LoadUsers])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
