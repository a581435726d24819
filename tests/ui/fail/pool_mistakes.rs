use pipeline_core::prelude::*;

pool!(Empty, 0);

pool!(Unsized);

pool!(Replica, 2, extra);

#[task(priority = "high")]
async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(priority = 99999999999)]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
