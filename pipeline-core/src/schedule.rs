//! Schedules in code: `schedule!` says when which targets run, in which time zone, and by when
//! they must be done. `daily schedules` lists them with their next ticks; `daily schedule`
//! fires them.
//!
//! A tick runs the day before its own local date: a nightly schedule at 02:00 in London on
//! 2026-11-26 runs the partition 2026-11-25, the day that just ended there. An hourly schedule
//! (`partition = hourly`) runs the local hour that just ended: its tick at 05:05 runs
//! 2026-11-26T04, from 04:00 to 05:00.

pub(crate) mod clock;
pub(crate) mod cron;
pub(crate) mod def;
pub(crate) mod listing;
pub(crate) mod scheduler;
mod tick;

use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::date::{Date, Partition};
pub(crate) use clock::Clock;
use cron::Cron;
use def::{Registration, ScheduleDef};
pub(crate) use scheduler::{BASELINE, Scheduler, SchedulerOptions};

/// What a scheduler that was down does with the ticks it missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Catchup {
    /// Run the newest missed tick once (the default).
    Latest,
    /// Run every missed tick, oldest first, up to [`MAX_CATCHUP`].
    All,
    /// Run none: wait for the next tick.
    None,
}

/// What a tick does while the previous run of its schedule is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// Do not run it (the default); the log says so.
    Skip,
    /// Run it when the previous run ends.
    Wait,
}

/// Which partition a schedule's tick runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// The day before the tick's local date (the default).
    Daily,
    /// The local hour that just ended: a tick at 05:05 runs `T04`, 04:00 to 05:00.
    Hourly,
}

/// Missed ticks `catchup = "all"` runs at most: the newest ones.
pub(crate) const MAX_CATCHUP: usize = 100;

/// A schedule, ready to compute its ticks.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The cron expression, as written.
    pub cron_text: String,
    /// The IANA time zone.
    pub time_zone: String,
    /// The task or family names it runs.
    pub targets: Vec<String>,
    /// How long after a tick its targets must be complete.
    pub deadline: Option<Duration>,
    /// What to do with missed ticks.
    pub catchup: Catchup,
    /// What a tick does while the previous run still goes.
    pub overlap: Overlap,
    /// Which partition a tick runs.
    pub partitioning: Partitioning,
    cron: Cron,
    tz: TimeZone,
}

impl Schedule {
    /// A schedule built at run time (from a file, say) rather than by `schedule!`: the cron
    /// expression and time zone are checked here, and the error says what is wrong. Targets
    /// are checked against the graph when a scheduler starts.
    pub fn new(
        name: impl Into<String>,
        cron: &str,
        time_zone: &str,
        targets: &[&str],
    ) -> anyhow::Result<Schedule> {
        let name = name.into();
        let parsed =
            Cron::parse(cron).map_err(|why| anyhow::anyhow!("schedule `{name}`: {why}"))?;
        let tz = TimeZone::get(time_zone)
            .with_context(|| format!("schedule `{name}`: unknown time zone `{time_zone}`"))?;
        Ok(Schedule {
            name,
            description: String::new(),
            cron_text: cron.to_string(),
            time_zone: tz.iana_name().unwrap_or(time_zone).to_string(),
            targets: targets.iter().map(|target| target.to_string()).collect(),
            deadline: None,
            catchup: Catchup::Latest,
            overlap: Overlap::Skip,
            partitioning: Partitioning::Daily,
            cron: parsed,
            tz,
        })
    }

    /// With a deadline: one critical alert when the targets are not complete this long after
    /// a tick.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// With a rule for missed ticks.
    pub fn catchup(mut self, catchup: Catchup) -> Self {
        self.catchup = catchup;
        self
    }

    /// With a rule for ticks while the previous run goes on.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// With the partition its ticks run: a day (the default) or an hour.
    pub fn partitioning(mut self, partitioning: Partitioning) -> Self {
        self.partitioning = partitioning;
        self
    }

    /// A schedule from its definition.
    pub(crate) fn from_def(def: &ScheduleDef) -> anyhow::Result<Schedule> {
        let targets: Vec<&str> = def.targets.iter().map(|target| target.def().name).collect();
        let mut schedule = Schedule::new(def.name, def.cron, def.time_zone, &targets)?;
        schedule.description = def.description.to_string();
        schedule.deadline = def.deadline;
        schedule.catchup = def.catchup;
        schedule.overlap = def.overlap;
        schedule.partitioning = def.partitioning;
        Ok(schedule)
    }

    /// The first tick strictly after `after_ms` (Unix milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        tick::next_tick(&self.cron, &self.tz, after).map(Timestamp::as_millisecond)
    }

    /// Whether its cron expression has a seconds field (which crontab cannot express).
    pub fn has_seconds(&self) -> bool {
        self.cron.has_seconds()
    }

    /// The partition a tick runs: the day before the tick's local date, or the local hour that
    /// just ended. The hour is found on the clock, not by subtracting from the local time: a
    /// tick delayed out of a skipped hour (spring) runs the hour before the gap, and the hour
    /// after a repeated one (autumn) runs that repeated hour, so no hour is lost.
    pub fn partition(&self, tick_ms: i64) -> Partition {
        match self.partitioning {
            Partitioning::Daily => Partition::Day(self.local_date(tick_ms).previous()),
            Partitioning::Hourly => self
                .hour_before(tick_ms)
                .unwrap_or_else(|| Partition::Day(self.local_date(tick_ms).previous())),
        }
    }

    /// The local hour that ended at the last full local hour before the tick: an hour of real
    /// time back from there, read on the local clock.
    fn hour_before(&self, tick_ms: i64) -> Option<Partition> {
        let local = Timestamp::from_millisecond(tick_ms)
            .ok()?
            .to_zoned_datetime(self.tz.clone());
        let into_hour_ms = (i64::from(local.minute()) * 60 + i64::from(local.second())) * 1000
            + i64::from(local.subsec_nanosecond()) / 1_000_000;
        let before = Timestamp::from_millisecond(tick_ms - into_hour_ms - 3_600_000).ok()?;
        let civil = self.tz.to_datetime(before);
        Partition::hour_of(date_of(civil.date())?, civil.hour() as u32)
    }

    /// A tick in the schedule's time zone, for people: `2026-11-26 02:00:00 GMT`.
    pub fn local_time(&self, tick_ms: i64) -> String {
        match Timestamp::from_millisecond(tick_ms) {
            Ok(at) => at
                .to_zoned_datetime(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            Err(_) => tick_ms.to_string(),
        }
    }

    /// The newest ticks after `after_ms` up to and including `until_ms`, at most `max`, oldest
    /// first; and whether older ones were left out. The search widens back from `until_ms`, so
    /// a long downtime of a dense schedule costs about as much as the ticks it returns.
    pub fn ticks_between(&self, after_ms: i64, until_ms: i64, max: usize) -> (Vec<i64>, bool) {
        let mut window: i64 = 60_000;
        loop {
            let start = until_ms.saturating_sub(window).max(after_ms);
            let mut ticks = Vec::new();
            let mut at = start;
            while let Some(tick) = self.next_after(at).filter(|tick| *tick <= until_ms) {
                ticks.push(tick);
                at = tick;
            }
            if ticks.len() >= max || start == after_ms {
                let older_in_window = ticks.len() > max;
                let older_before =
                    start > after_ms && self.next_after(after_ms).is_some_and(|tick| tick <= start);
                let keep = ticks.len().saturating_sub(max);
                return (ticks.split_off(keep), older_in_window || older_before);
            }
            window = window.saturating_mul(4);
        }
    }

    /// The local calendar date of an instant.
    fn local_date(&self, tick_ms: i64) -> Date {
        Timestamp::from_millisecond(tick_ms)
            .ok()
            .and_then(|at| date_of(self.tz.to_datetime(at).date()))
            .unwrap_or_else(|| Date::of_millis(tick_ms))
    }
}

/// A civil date of the time-zone library as a partition's [`Date`].
fn date_of(civil: jiff::civil::Date) -> Option<Date> {
    Date::from_ymd(
        i64::from(civil.year()),
        civil.month() as u32,
        civil.day() as u32,
    )
}

/// Every schedule linked into this binary, sorted by name.
pub fn registered() -> anyhow::Result<Vec<Schedule>> {
    let mut defs: Vec<&'static ScheduleDef> = inventory::iter::<Registration>
        .into_iter()
        .map(|registration| registration.0)
        .collect();
    defs.sort_by_key(|def| def.name);
    if let Some(pair) = defs.windows(2).find(|pair| pair[0].name == pair[1].name) {
        anyhow::bail!(
            "two schedules are named `{}`: in {} and in {}; rename one",
            pair[0].name,
            pair[0].module_path,
            pair[1].module_path
        );
    }
    defs.into_iter().map(Schedule::from_def).collect()
}
