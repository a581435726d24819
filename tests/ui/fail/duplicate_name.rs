//! Two tasks with one name in one crate: refused at compile time, pointing at both.
use pipeline_core::prelude::*;

mod replica {
    use super::*;

    #[task]
    pub async fn load_orders(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

mod warehouse {
    use super::*;

    #[task(name = "load_orders")]
    pub async fn copy_orders(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

fn main() {}
