use pipeline_core::prelude::*;

#[task]
async fn make_report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

schedule!(nightly, cron = "0 2 * * *", targets = [MakeReport]);

mod again {
    use super::*;

    schedule!(nightly, cron = "0 3 * * *", targets = [MakeReport]);
}

fn main() {}
