//! A schedule's static definition as `schedule!` writes it, and the registry that collects
//! them. Generated code names these through `__private`; they are no public API.

use std::time::Duration;

use super::{Catchup, Overlap, Partitioning};
use crate::task::DefRef;

/// A schedule as `schedule!` writes it: a `static`, checked at compile time.
#[derive(Debug)]
pub struct ScheduleDef {
    /// Its name: the first argument of `schedule!`.
    pub name: &'static str,
    /// The doc comment inside `schedule!`.
    pub description: &'static str,
    /// The cron expression, as written.
    pub cron: &'static str,
    /// The IANA time zone (canonical spelling).
    pub time_zone: &'static str,
    /// The tasks or families it runs, with everything they need.
    pub targets: &'static [DefRef],
    /// How long after a tick its targets must be complete.
    pub deadline: Option<Duration>,
    /// What to do with missed ticks.
    pub catchup: Catchup,
    /// What a tick does while the previous run still goes.
    pub overlap: Overlap,
    /// Which partition a tick runs: a day or an hour.
    pub partitioning: Partitioning,
    /// The module that declares it.
    pub module_path: &'static str,
}

/// One registered schedule, submitted by `schedule!` through `inventory`.
#[derive(Debug)]
pub struct Registration(pub &'static ScheduleDef);

inventory::collect!(Registration);
