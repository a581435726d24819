use pipeline_core::prelude::*;

#[task]
async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(pool = LoadUsers)]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
