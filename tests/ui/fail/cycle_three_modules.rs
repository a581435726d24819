// A cycle of three tasks across two modules, through a soft (`after`) dependency too.
use pipeline_core::prelude::*;

mod loads {
    use pipeline_core::prelude::*;

    #[task(requires = [super::models::MakeReport])]
    pub async fn load_orders(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

mod models {
    use pipeline_core::prelude::*;

    #[task(requires = [super::loads::LoadOrders])]
    pub async fn make_model(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }

    #[task(after = [MakeModel])]
    pub async fn make_report(_ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

#[task]
async fn unrelated(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
