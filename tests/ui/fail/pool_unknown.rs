use pipeline_core::prelude::*;

pool!(Replica, 2);

#[task(pool = Replcia)]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
