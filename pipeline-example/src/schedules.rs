//! When the pipeline runs. `cargo run --bin daily -- schedules` lists the ticks;
//! `cargo run --bin daily -- schedule` fires them.

use pipeline_core::prelude::*;

use crate::model::{MakeManagementReport, ReportIsNotEmpty};

schedule! {
    /// The nightly pipeline: the management report and its check, for the day that just ended
    /// in London. Management reads it at 06:00, so a report not done by then pages.
    nightly,
    cron = "0 2 * * *",
    tz = "Europe/London",
    targets = [MakeManagementReport, ReportIsNotEmpty],
    deadline = "4h",
}
