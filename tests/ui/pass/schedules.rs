// Every key of schedule!, a doc comment, a family target, and what the registry makes of them.
use pipeline_core::prelude::*;
use pipeline_core::testing::{Catchup, Overlap, Partitioning};

const TABLES: &[&str] = &["users", "orders"];

#[task(for_each = TABLES)]
async fn load(_ctx: &Ctx, _table: &str) -> Result<()> {
    Ok(())
}

#[task(requires = [Load])]
async fn make_report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

schedule! {
    /// The nightly report,
    /// for yesterday in London.
    nightly,
    cron = "0 2 * * *",
    tz = "europe/london",
    targets = [MakeReport],
    deadline = "4h",
    catchup = "all",
    overlap = "wait",
    partition = daily,
}

schedule!(
    loads,
    cron = "*/30 6-18 * * mon-fri",
    targets = [Load],
    partition = hourly
);

fn main() {
    let schedules = pipeline_core::testing::schedules().expect("valid schedules");
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["loads", "nightly"]);
    let nightly = &schedules[1];
    assert_eq!(
        nightly.description,
        "The nightly report,\nfor yesterday in London."
    );
    assert_eq!(
        nightly.time_zone, "Europe/London",
        "the zone's canonical name"
    );
    assert_eq!(nightly.targets, ["make_report"]);
    assert_eq!(nightly.deadline, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(
        (nightly.catchup, nightly.overlap),
        (Catchup::All, Overlap::Wait)
    );
    let loads = &schedules[0];
    assert_eq!(loads.time_zone, "UTC");
    assert_eq!(loads.targets, ["load"], "a family by its name");
    assert_eq!(
        (loads.catchup, loads.overlap),
        (Catchup::Latest, Overlap::Skip)
    );
    assert_eq!(
        (nightly.partitioning, loads.partitioning),
        (Partitioning::Daily, Partitioning::Hourly)
    );
}
