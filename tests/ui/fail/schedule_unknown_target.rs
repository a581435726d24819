use pipeline_core::prelude::*;

#[task]
async fn make_report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

struct NotATask;

schedule!(misspelt, cron = "0 2 * * *", targets = [MakeReprot]);

schedule!(not_a_task, cron = "0 2 * * *", targets = [MakeReport, NotATask]);

fn main() {}
