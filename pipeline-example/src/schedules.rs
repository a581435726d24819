//! When the pipeline runs. `cargo run --bin daily -- schedules` lists the ticks;
//! `cargo run --bin daily -- schedule` fires them.

use pipeline_core::prelude::*;

use crate::model::{CountOrdersByCity, MakeManagementReport, ReportIsNotEmpty};

schedule! {
    /// The nightly pipeline: the management report and its check, for the day that just ended
    /// in London. Management reads it at 06:00, so a report not done by then pages.
    nightly,
    cron = "0 2 * * *",
    tz = "Europe/London",
    targets = [MakeManagementReport, ReportIsNotEmpty],
    deadline = "4h",
}

schedule! {
    /// Orders per city for the operations dashboard, every hour at five past, for the hour that
    /// just ended (UTC).
    hourly_orders,
    cron = "5 * * * *",
    partition = hourly,
    targets = [CountOrdersByCity],
}
