// A syntax error inside a task's body is rustc's to report, once, where it stands: `#[task]`
// reads only the signature and passes the body on untouched.
use pipeline_core::prelude::*;

#[task]
async fn load_orders(_ctx: &Ctx) -> Result<()> {
    let rows = ;
    Ok(())
}

fn main() {}
