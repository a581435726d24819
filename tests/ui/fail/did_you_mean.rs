use pipeline_core::prelude::*;

#[task(retry = 2)]
async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [LoadUsers], timout = "1h")]
async fn make_model(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[check(on = LoadUsers, severity = "warm")]
async fn users_are_fresh(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[check(on = LoadUsers, blockng)]
async fn users_are_unique(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

schedule!(nightly, cron = "0 2 * * *", targets = [MakeModel], dedline = "4h");

schedule!(catching_up, cron = "0 2 * * *", targets = [MakeModel], catchup = "lates");

schedule!(overlapping, cron = "0 2 * * *", targets = [MakeModel], overlap = "wiat");

schedule!(hourly, cron = "5 * * * *", targets = [MakeModel], partition = hourl);

fn main() {}
