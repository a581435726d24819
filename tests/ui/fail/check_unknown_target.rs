use pipeline_core::prelude::*;

#[task]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[check(on = LoadOrder)]
async fn orders_are_fresh(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("fresh"))
}

fn main() {}
