use std::rc::Rc;

use pipeline_core::prelude::*;

#[task]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    let shared = Rc::new(1);
    tokio_free_yield().await;
    drop(shared);
    Ok(())
}

async fn tokio_free_yield() {}

fn main() {}
