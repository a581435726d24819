use pipeline_core::prelude::*;

tables! {
    pub source replica { orders }
    pub warehouse { orders }
}

#[task(writes = [warehouse::orders])]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

// A second writer of the same table: which one's rows does a reader get?
#[task(writes = [warehouse::orders])]
async fn backfill_orders(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

// A source is read here and written elsewhere.
#[task(writes = [replica::orders])]
async fn write_back(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
