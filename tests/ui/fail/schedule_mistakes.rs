use pipeline_core::prelude::*;

#[task]
async fn make_report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

schedule!(bad_cron, cron = "0 25 * * *", targets = [MakeReport]);

schedule!(short_cron, cron = "0 2 * *", targets = [MakeReport]);

schedule!(bad_zone, cron = "0 2 * * *", tz = "Europe/Londn", targets = [MakeReport]);

schedule!(bad_deadline, cron = "0 2 * * *", targets = [MakeReport], deadline = "soon");

schedule!(bad_catchup, cron = "0 2 * * *", targets = [MakeReport], catchup = "some");

schedule!(unknown_key, cron = "0 2 * * *", targets = [MakeReport], pool = "x");

schedule!(weekly, cron = "0 2 * * mon", targets = [MakeReport], partition = weekly);

schedule!(quoted, cron = "0 2 * * mon", targets = [MakeReport], partition = "hourly");

schedule!(no_targets, cron = "0 2 * * *");

schedule!(never, cron = "0 0 31 2 *", targets = [MakeReport]);

fn main() {}
