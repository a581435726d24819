use pipeline_core::prelude::*;

#[task]
fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
