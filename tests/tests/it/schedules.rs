//! The scheduler against a real SQLite state store, on a clock the tests move: which ticks
//! fire after downtime, overlapping runs, deadlines, and one active scheduler among several.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pipeline_core::TaskSpec;
use pipeline_core::date::Date;
use pipeline_core::testing::Runner;
use pipeline_core::testing::TickRecord;
use pipeline_core::testing::{BASELINE, Clock, Scheduler, SchedulerOptions, due_ticks};
use pipeline_core::testing::{Catchup, Overlap, Partitioning, Schedule};
use pipeline_tests::{Sandbox, runner_for, sqlite_execute, sqlite_rows};
use tokio::sync::watch;

/// 2026-11-26 00:00 UTC.
const MIDNIGHT: i64 = 1_795_651_200_000;
const MINUTE: i64 = 60_000;

/// A task that counts its runs, and blocks while `hold` is set.
fn task(name: &str, runs: Arc<AtomicUsize>, hold: Arc<AtomicBool>) -> TaskSpec {
    TaskSpec::new(name, move |_ctx| {
        let (runs, hold) = (Arc::clone(&runs), Arc::clone(&hold));
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            while hold.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
    })
}

struct Harness {
    runner: Runner,
    clock: Clock,
    runs: Arc<AtomicUsize>,
    hold: Arc<AtomicBool>,
    _sandbox: Sandbox,
}

async fn harness(name: &str) -> Harness {
    let sandbox = Sandbox::new(name);
    let runs = Arc::new(AtomicUsize::new(0));
    let hold = Arc::new(AtomicBool::new(false));
    let config = sandbox.config(&[]);
    let runner = runner_for(
        &config,
        "sched",
        vec![task("report", Arc::clone(&runs), Arc::clone(&hold))],
    )
    .await;
    Harness {
        runner,
        clock: Clock::manual(MIDNIGHT),
        runs,
        hold,
        _sandbox: sandbox,
    }
}

impl Harness {
    /// Starts a scheduler of `schedule`; stop it by sending `true`.
    fn start(&self, schedule: Schedule) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let options = SchedulerOptions {
            lease: Duration::from_secs(60),
            workers: 2,
            clock: self.clock.clone(),
            distributed: false,
        };
        let scheduler =
            Scheduler::new(self.runner.clone(), vec![schedule], options).expect("a scheduler");
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            scheduler.run(stopped).await.expect("the scheduler");
        });
        (stop, handle)
    }

    /// The ticks recorded, without a scheduler's mark of where it started watching.
    async fn ticks(&self) -> Vec<TickRecord> {
        let mut ticks = self.all_ticks().await;
        ticks.retain(|tick| tick.status != BASELINE);
        ticks
    }

    async fn all_ticks(&self) -> Vec<TickRecord> {
        self.runner
            .store
            .ticks("sched", 0)
            .await
            .expect("the ticks")
    }

    /// Waits until the recorded ticks satisfy `done`.
    async fn wait_for_ticks(&self, done: impl Fn(&[TickRecord]) -> bool) -> Vec<TickRecord> {
        for _ in 0..500 {
            let ticks = self.ticks().await;
            if done(&ticks) {
                return ticks;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "ticks never reached the expected state: {:?}",
            self.ticks().await
        );
    }
}

fn every_minute() -> Schedule {
    Schedule::new("every_minute", "* * * * *", "UTC", &["report"]).expect("a schedule")
}

fn statuses(ticks: &[TickRecord]) -> Vec<(i64, &str)> {
    ticks
        .iter()
        .map(|tick| ((tick.tick_at - MIDNIGHT) / MINUTE, tick.status.as_str()))
        .collect()
}

/// Unix milliseconds of a UTC time.
fn utc(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
    let date = Date::from_ymd(year, month, day).expect("a date");
    date.days_since_epoch() * 24 * 60 * MINUTE + (hour * 60 + minute) * MINUTE
}

/// The partitions of an hourly schedule's next `count` ticks after `from_ms`.
fn hourly_partitions(zone: &str, from_ms: i64, count: usize) -> Vec<String> {
    let schedule = Schedule::new("hourly", "5 * * * *", zone, &["report"])
        .expect("a schedule")
        .partitioning(Partitioning::Hourly);
    let mut at = from_ms;
    (0..count)
        .map(|_| {
            at = schedule.next_after(at).expect("a tick");
            schedule.partition(at).to_string()
        })
        .collect()
}

#[test]
fn an_hourly_tick_runs_the_local_hour_that_just_ended() {
    assert_eq!(
        hourly_partitions("UTC", utc(2026, 11, 25, 22, 30), 3),
        ["2026-11-25T22", "2026-11-25T23", "2026-11-26T00"]
    );
    // 05:05 in Kolkata (UTC+05:30, 23:35 UTC) runs 04:00 to 05:00 there.
    assert_eq!(
        hourly_partitions("Asia/Kolkata", utc(2026, 11, 25, 23, 0), 1),
        ["2026-11-26T04"]
    );
    let daily =
        Schedule::new("nightly", "0 2 * * *", "Europe/London", &["report"]).expect("a schedule");
    assert_eq!(
        daily.partition(utc(2026, 11, 26, 2, 0)).to_string(),
        "2026-11-25"
    );
}

#[test]
fn hourly_partitions_lose_no_hour_when_the_clocks_change() {
    // London skips 01:00-02:00 on 2026-03-29: the 01:05 tick fires at the change (02:00 BST)
    // and runs 00:00-01:00, as does 02:05 (the hour before it is the gap); no hour is lost.
    assert_eq!(
        hourly_partitions("Europe/London", utc(2026, 3, 28, 23, 30), 5),
        [
            "2026-03-28T23",
            "2026-03-29T00",
            "2026-03-29T00",
            "2026-03-29T02",
            "2026-03-29T03"
        ]
    );
    // London repeats 01:00-02:00 on 2026-10-25: its 01:05 fires once, and 02:05 runs T01,
    // the wall-clock hour that happened twice.
    assert_eq!(
        hourly_partitions("Europe/London", utc(2026, 10, 24, 22, 30), 4),
        [
            "2026-10-24T23",
            "2026-10-25T00",
            "2026-10-25T01",
            "2026-10-25T02"
        ]
    );
    // Sydney skips 02:00-03:00 on 2026-10-04 and repeats it on 2026-04-05.
    assert_eq!(
        hourly_partitions("Australia/Sydney", utc(2026, 10, 3, 14, 30), 4),
        [
            "2026-10-04T00",
            "2026-10-04T01",
            "2026-10-04T01",
            "2026-10-04T03"
        ]
    );
    assert_eq!(
        hourly_partitions("Australia/Sydney", utc(2026, 4, 4, 13, 30), 3),
        ["2026-04-05T00", "2026-04-05T01", "2026-04-05T02"]
    );
}

#[test]
fn catchup_rules_choose_the_missed_ticks() {
    let last = MIDNIGHT;
    let now = MIDNIGHT + 5 * MINUTE + 30_000;
    let latest = every_minute();
    assert_eq!(
        due_ticks(&latest, last, now),
        (vec![MIDNIGHT + 5 * MINUTE], true)
    );
    let all = every_minute().catchup(Catchup::All);
    let (ticks, left_out) = due_ticks(&all, last, now);
    assert_eq!(ticks.len(), 5);
    assert!(!left_out);
    let none = every_minute().catchup(Catchup::None);
    assert_eq!(
        due_ticks(&none, last, now),
        (vec![MIDNIGHT + 5 * MINUTE], true),
        "30 s late is still on time"
    );
    let long_ago = MIDNIGHT + 5 * MINUTE + 5 * MINUTE;
    let (ticks, left_out) = due_ticks(&none, MIDNIGHT + 5 * MINUTE, long_ago + 1);
    assert_eq!(ticks, vec![long_ago], "only the tick that is on time");
    assert!(left_out);
    // `all` is bounded: a year of missed minutes runs the newest hundred.
    let (ticks, left_out) = due_ticks(&all, last, last + 366 * 24 * 60 * MINUTE);
    assert_eq!(ticks.len(), 100);
    assert!(left_out);
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_skips_and_catches_up_by_its_rule() {
    let h = harness("sched-restart").await;
    let (stop, handle) = h.start(every_minute().catchup(Catchup::All));
    h.clock.set(MIDNIGHT + MINUTE);
    h.wait_for_ticks(|t| statuses(t) == [(1, "succeeded")])
        .await;
    stop.send(true).expect("stop");
    handle.await.expect("stopped");

    // Down for four minutes; the next scheduler runs each missed tick once, oldest first.
    h.clock.set(MIDNIGHT + 5 * MINUTE);
    let (stop, handle) = h.start(every_minute().catchup(Catchup::All));
    let ticks = h
        .wait_for_ticks(|t| t.len() == 5 && t.iter().all(|t| t.status == "succeeded"))
        .await;
    assert_eq!(
        statuses(&ticks).iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    stop.send(true).expect("stop");
    handle.await.expect("stopped");

    // Down again; `latest` runs only the newest missed tick.
    h.clock.set(MIDNIGHT + 9 * MINUTE);
    let (stop, handle) = h.start(every_minute());
    let ticks = h
        .wait_for_ticks(|t| t.len() == 6 && t[5].status == "succeeded")
        .await;
    assert_eq!(ticks[5].tick_at, MIDNIGHT + 9 * MINUTE);
    stop.send(true).expect("stop");
    handle.await.expect("stopped");
    // Every tick ran the partition of the day before.
    assert!(ticks.iter().all(|t| t.partition == "2026-11-25"));
}

#[tokio::test]
async fn a_scheduler_stopped_before_its_first_tick_leaves_a_mark_to_catch_up_from() {
    let h = harness("sched-baseline").await;
    let (stop, handle) = h.start(every_minute().catchup(Catchup::All));
    for _ in 0..500 {
        if h.all_ticks()
            .await
            .iter()
            .any(|tick| tick.status == BASELINE)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).expect("stop");
    handle.await.expect("stopped");
    assert!(h.ticks().await.is_empty(), "no tick came yet");
    // Down through two ticks: the next scheduler runs both, from the first one's start.
    h.clock.set(MIDNIGHT + 2 * MINUTE + 1);
    let (stop, handle) = h.start(every_minute().catchup(Catchup::All));
    h.wait_for_ticks(|t| statuses(t) == [(1, "succeeded"), (2, "succeeded")])
        .await;
    stop.send(true).expect("stop");
    handle.await.expect("stopped");
}

#[tokio::test]
async fn overlap_skip_records_the_tick_and_wait_runs_it_after() {
    for overlap in [Overlap::Skip, Overlap::Wait] {
        let h = harness(&format!("sched-overlap-{overlap:?}")).await;
        h.hold.store(true, Ordering::SeqCst);
        let (stop, handle) = h.start(every_minute().overlap(overlap));
        h.clock.set(MIDNIGHT + MINUTE);
        h.wait_for_ticks(|t| statuses(t) == [(1, "fired")]).await;
        h.clock.set(MIDNIGHT + 2 * MINUTE);
        match overlap {
            Overlap::Skip => {
                h.wait_for_ticks(|t| statuses(t) == [(1, "fired"), (2, "skipped")])
                    .await;
                h.hold.store(false, Ordering::SeqCst);
                h.wait_for_ticks(|t| statuses(t) == [(1, "succeeded"), (2, "skipped")])
                    .await;
                assert_eq!(h.runs.load(Ordering::SeqCst), 1);
            }
            Overlap::Wait => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert_eq!(statuses(&h.ticks().await), [(1, "fired")], "tick 2 waits");
                h.hold.store(false, Ordering::SeqCst);
                h.wait_for_ticks(|t| statuses(t) == [(1, "succeeded"), (2, "succeeded")])
                    .await;
            }
        }
        stop.send(true).expect("stop");
        handle.await.expect("stopped");
    }
}

/// A scheduler of `every_minute` with `deadline`, whose first tick has fired and whose report
/// runs until `hold` is released.
async fn a_held_tick_with_a_deadline(
    name: &str,
    deadline: Duration,
) -> (Harness, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let h = harness(name).await;
    h.hold.store(true, Ordering::SeqCst);
    let schedule = every_minute().deadline(deadline);
    let (stop, handle) = h.start(schedule.overlap(Overlap::Wait));
    h.clock.set(MIDNIGHT + MINUTE);
    h.wait_for_ticks(|t| statuses(t) == [(1, "fired")]).await;
    (h, stop, handle)
}

/// Lets the report complete: the tick succeeds and its deadline alert is resolved.
async fn release_and_resolve(
    h: &Harness,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
) {
    h.hold.store(false, Ordering::SeqCst);
    h.wait_for_ticks(|t| t[0].status == "succeeded" && !t[0].deadline_alerted)
        .await;
    stop.send(true).expect("stop");
    handle.await.expect("stopped");
}

#[tokio::test]
async fn a_deadline_alerts_once_while_the_targets_are_missing_and_resolves() {
    let (h, stop, handle) =
        a_held_tick_with_a_deadline("sched-deadline", Duration::from_secs(600)).await;
    // Before the deadline: no alert.
    h.clock.set(MIDNIGHT + 10 * MINUTE);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.ticks().await[0].deadline_alerted);
    // Past it, with the report still running: one alert, recorded on the tick.
    h.clock.set(MIDNIGHT + 11 * MINUTE + 1);
    h.wait_for_ticks(|t| t[0].deadline_alerted).await;
    // The report completes (the clock moves on too): the alert resolves.
    h.clock.set(MIDNIGHT + 12 * MINUTE);
    release_and_resolve(&h, stop, handle).await;
}

/// A deadline that falls between two of the scheduler's periodic checks (a renewal period,
/// 20 s here) is checked at its own instant, and resolves as soon as the run ends.
#[tokio::test]
async fn a_deadline_between_periodic_checks_alerts_at_its_instant_and_resolves_when_the_run_ends() {
    let (h, stop, handle) =
        a_held_tick_with_a_deadline("sched-deadline-instant", Duration::from_secs(3)).await;
    // 3 s after the tick, well inside the period since the check made when it fired.
    h.clock.set(MIDNIGHT + MINUTE + 3_001);
    h.wait_for_ticks(|t| t[0].deadline_alerted).await;
    // The report completes while the clock stands still: the alert resolves all the same.
    release_and_resolve(&h, stop, handle).await;
}

#[tokio::test]
async fn of_two_schedulers_one_fires_and_the_other_takes_over_when_it_dies() {
    let h = harness("sched-lease").await;
    let options = |lease: u64| SchedulerOptions {
        lease: Duration::from_secs(lease),
        workers: 1,
        clock: h.clock.clone(),
        distributed: false,
    };
    // `wait`: a tick that comes while the last run's bookkeeping finishes must not be skipped.
    let schedule = every_minute().catchup(Catchup::All).overlap(Overlap::Wait);
    // A short lease, that a loaded machine may let run out: the lease then changes hands
    // while the first still runs its tick, and that tick must not run again.
    let first =
        Scheduler::new(h.runner.clone(), vec![schedule.clone()], options(1)).expect("a scheduler");
    let second = Scheduler::new(h.runner.clone(), vec![schedule], options(1)).expect("a scheduler");
    let (_stop, stopped) = watch::channel(false);
    let first = tokio::spawn(first.run(stopped.clone()));
    h.clock.set(MIDNIGHT + MINUTE);
    h.wait_for_ticks(|t| statuses(t) == [(1, "succeeded")])
        .await;
    let second = tokio::spawn(second.run(stopped));
    for minute in 2..=3 {
        h.clock.set(MIDNIGHT + minute * MINUTE);
        h.wait_for_ticks(|t| {
            t.len() == minute as usize && t.iter().all(|t| t.status == "succeeded")
        })
        .await;
    }
    // The active one dies without a word (its lease is not given up): the other takes over
    // within a lease period and runs the ticks that came meanwhile, each once.
    first.abort();
    h.clock.set(MIDNIGHT + 5 * MINUTE);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.clock.set(MIDNIGHT + 5 * MINUTE + 1);
    let ticks = h
        .wait_for_ticks(|t| t.len() == 5 && t.iter().all(|t| t.status == "succeeded"))
        .await;
    assert_eq!(
        statuses(&ticks).iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let runs = h.runner.store.runs("sched", 100).await.expect("the runs");
    let mut run_ids: Vec<i64> = ticks.iter().filter_map(|t| t.run_id).collect();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 5, "each tick has a run of its own");
    assert_eq!(
        runs.len(),
        5,
        "and no other run was started: none ran twice"
    );
    second.abort();
}

#[tokio::test]
async fn a_scheduler_that_loses_its_lease_keeps_its_tick_and_nobody_runs_it_again() {
    let h = harness("sched-lost-lease").await;
    let options = SchedulerOptions {
        lease: Duration::from_secs(1),
        workers: 1,
        clock: h.clock.clone(),
        distributed: false,
    };
    let first = Scheduler::new(h.runner.clone(), vec![every_minute()], options.clone())
        .expect("a scheduler");
    let second =
        Scheduler::new(h.runner.clone(), vec![every_minute()], options).expect("a scheduler");
    let (stop, stopped) = watch::channel(false);
    let first = tokio::spawn(first.run(stopped.clone()));
    h.hold.store(true, Ordering::SeqCst);
    h.clock.set(MIDNIGHT + MINUTE);
    h.wait_for_ticks(|t| statuses(t) == [(1, "fired")]).await;
    while h.runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The lease goes to the stand-by while the first one's run goes on (as when a stalled
    // machine lets it run out): the new active scheduler leaves the live run's tick alone.
    let second = tokio::spawn(second.run(stopped));
    let state = h._sandbox.path("state.db");
    let stolen = sqlite_execute(
        &state,
        "UPDATE pipeline_scheduler_leases SET token = 'elsewhere', expires_at = 0",
    )
    .await;
    assert_eq!(stolen, 1, "the lease runs out");
    let holder = loop {
        let holder = sqlite_rows(
            &state,
            "SELECT token FROM pipeline_scheduler_leases WHERE token <> 'elsewhere'",
        )
        .await;
        if !holder.is_empty() {
            break holder;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.runs.load(Ordering::SeqCst), 1, "nobody ran it again");
    h.hold.store(false, Ordering::SeqCst);
    let ticks = h
        .wait_for_ticks(|t| statuses(t) == [(1, "succeeded")])
        .await;
    assert_eq!(h.runs.load(Ordering::SeqCst), 1, "the tick ran once");
    let runs = h.runner.store.runs("sched", 100).await.expect("the runs");
    assert_eq!(runs.len(), 1, "{runs:?} {ticks:?} lease: {holder:?}");
    stop.send(true).expect("stop");
    first.await.expect("stopped").expect("the first scheduler");
    second
        .await
        .expect("stopped")
        .expect("the second scheduler");
}

#[tokio::test]
async fn an_hourly_schedule_runs_and_completes_the_hour_that_ended() {
    let h = harness("sched-hourly").await;
    let hourly = Schedule::new("hourly", "5 * * * *", "UTC", &["report"])
        .expect("a schedule")
        .partitioning(Partitioning::Hourly);
    let (stop, handle) = h.start(hourly);
    h.clock.set(MIDNIGHT + 5 * 60 * MINUTE + 5 * MINUTE);
    let ticks = h
        .wait_for_ticks(|t| t.len() == 1 && t[0].status == "succeeded")
        .await;
    assert_eq!(
        ticks[0].partition, "2026-11-26T04",
        "05:05 runs 04:00 to 05:00"
    );
    stop.send(true).expect("stop");
    handle.await.expect("stopped");
    let key = h.runner.partition_key(
        "2026-11-26T04"
            .parse::<pipeline_core::date::Partition>()
            .expect("an hour"),
        false,
    );
    let complete = h.runner.complete(&key).await.expect("markers");
    assert!(
        complete.contains("report"),
        "the hour is complete: {complete:?}"
    );
    let day = h
        .runner
        .partition_key(Date::from_ymd(2026, 11, 26).expect("a date"), false);
    assert!(h.runner.complete(&day).await.expect("markers").is_empty());
    assert_eq!(h.runs.load(Ordering::SeqCst), 1);
}
