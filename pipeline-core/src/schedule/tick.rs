//! When a cron expression fires in a time zone, through daylight saving changes.
//!
//! Ticks are found by walking the local calendar: each day the expression allows, each time
//! of it, turned into an instant. A local time the clocks skip (spring) fires once, at the
//! moment the clocks change; a local time they repeat (autumn) fires once, the first time.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::cron::Cron;

/// Days searched for the next tick: `0 0 29 2 *` may wait eight years (2096 to 2104).
const HORIZON_DAYS: u32 = 366 * 8 + 2;

/// The first tick strictly after `after`, or `None` when there is none within eight years.
pub fn next_tick(cron: &Cron, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let mut date = tz.to_datetime(after).date();
    for _ in 0..HORIZON_DAYS {
        let weekday = date.weekday().to_sunday_zero_offset() as u8;
        if cron.matches_day(date.day() as u8, date.month() as u8, weekday) {
            for hour in cron.hours() {
                for minute in cron.minutes() {
                    for second in cron.seconds() {
                        let local = date.at(hour as i8, minute as i8, second as i8, 0);
                        let instant = instant_of(tz, local)?;
                        if instant > after {
                            return Some(instant);
                        }
                    }
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// The instant a local time fires at: itself; in a gap, the moment the clocks change; in a
/// fold, its first occurrence.
fn instant_of(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the change, the local time lies before the change.
            let before_change = after.to_timestamp(local).ok()?;
            tz.following(before_change)
                .next()
                .map(|change| change.timestamp())
        }
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(cron: &str, zone: &str, from: &str, count: usize) -> Vec<String> {
        let cron = Cron::parse(cron).expect("valid cron");
        let tz = TimeZone::get(zone).expect("known zone");
        let mut at: Timestamp = from.parse().expect("a timestamp");
        (0..count)
            .map(|_| {
                at = next_tick(&cron, &tz, at).expect("a tick");
                at.to_string()
            })
            .collect()
    }

    #[test]
    fn daily_in_london_across_the_clock_changes() {
        // 02:00 is unambiguous in London on both change days (the change is at 01:00 UTC).
        assert_eq!(
            ticks("0 2 * * *", "Europe/London", "2026-03-28T00:00:00Z", 3),
            [
                "2026-03-28T02:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T01:00:00Z"
            ]
        );
    }

    #[test]
    fn a_skipped_local_time_fires_once_when_the_clocks_change() {
        // London skips 01:00-02:00 on 2026-03-29: 01:30 fires at the change, 01:00 UTC.
        assert_eq!(
            ticks("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // Every quarter hour of the skipped hour collapses into one tick.
        assert_eq!(
            ticks("*/15 1 * * *", "Europe/London", "2026-03-29T00:50:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]
        );
        // Sydney skips 02:00-03:00 on 2026-10-04 (16:00 UTC the day before).
        assert_eq!(
            ticks("30 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z", 2),
            ["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"]
        );
    }

    #[test]
    fn a_repeated_local_time_fires_once() {
        // London repeats 01:00-02:00 on 2026-10-25: 01:30 fires at its first occurrence.
        assert_eq!(
            ticks("30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // Sydney repeats 02:00-03:00 on 2026-04-05 (15:00-16:00 UTC the day before).
        assert_eq!(
            ticks("30 2 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z", 2),
            ["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"]
        );
        // Hourly: the repeated 01:00 is one local time, so it fires once (00:00 UTC), not twice.
        assert_eq!(
            ticks("0 * * * *", "Europe/London", "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T03:00:00Z"
            ]
        );
    }

    #[test]
    fn rare_days_and_seconds() {
        assert_eq!(
            ticks("0 0 29 2 *", "UTC", "2026-11-26T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
        assert_eq!(
            ticks("*/20 * * * * *", "UTC", "2026-11-26T00:00:05Z", 3),
            [
                "2026-11-26T00:00:20Z",
                "2026-11-26T00:00:40Z",
                "2026-11-26T00:01:00Z"
            ]
        );
    }
}
