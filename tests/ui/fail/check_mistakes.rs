use pipeline_core::prelude::*;

#[task]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[check(severity = "warn")]
async fn no_target(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("fine"))
}

#[check(on = LoadOrders, severity = "fatal")]
async fn bad_severity(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("fine"))
}

#[check(on = LoadOrders, retries = 3)]
async fn task_key_on_a_check(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("fine"))
}

#[check(on = LoadOrders)]
async fn returns_nothing(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
