use pipeline_core::prelude::*;

#[task]
async fn no_context() -> Result<()> {
    Ok(())
}

#[task]
async fn no_result(_ctx: &Ctx) {}

#[task]
async fn key_without_family(_ctx: &Ctx, _table: &str) -> Result<()> {
    Ok(())
}

#[task]
async fn wrong_context(_ctx: &str) -> Result<()> {
    Ok(())
}

#[task]
async fn wrong_output(_ctx: &Ctx) -> Result<u32> {
    Ok(1)
}

#[task]
async fn context_by_value(_ctx: Ctx) -> Result<()> {
    Ok(())
}

#[task]
async fn returns_a_count(_ctx: &Ctx) -> Result<u64> {
    Ok(1)
}

fn main() {}
