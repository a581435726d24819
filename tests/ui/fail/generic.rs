use pipeline_core::prelude::*;

#[task]
async fn load<T: Send>(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
