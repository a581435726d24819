//! Partitions (a day `YYYY-MM-DD` or an hour `YYYY-MM-DDTHH`) and wall-clock timestamps,
//! without a calendar dependency.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar day: the partition a run works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Days since 1970-01-01.
    days: i64,
}

impl Date {
    /// Today in UTC.
    pub fn today() -> Date {
        Date::of_millis(now_millis())
    }

    /// The UTC day of a Unix timestamp in milliseconds.
    pub(crate) fn of_millis(millis: i64) -> Date {
        Date {
            days: millis.div_euclid(86_400_000),
        }
    }

    /// A calendar date; `None` when there is no such day.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date {
            days: days_from_civil(year, month, day),
        })
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        self.days
    }

    /// The day after.
    pub fn next(self) -> Date {
        Date {
            days: self.days + 1,
        }
    }

    /// The day before.
    pub fn previous(self) -> Date {
        Date {
            days: self.days - 1,
        }
    }

    /// `(year, month, day)`.
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(text: &str) -> Result<Date, String> {
        let invalid = || format!("invalid date {text:?}: use YYYY-MM-DD, e.g. 2026-11-26");
        let parts: Vec<&str> = text.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(invalid());
        };
        // Digits only: `+202` and `+3` parse as numbers, but are not what a date looks like.
        let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
            return Err(invalid());
        }
        let number = |s: &str| s.parse::<u32>().map_err(|_| invalid());
        Date::from_ymd(i64::from(number(y)?), number(m)?, number(d)?).ok_or_else(invalid)
    }
}

/// The slice of time a run works on: a day (`2026-11-26`) or an hour of a day
/// (`2026-11-26T05`, from 05:00 to 06:00). Markers, locks and history are kept per partition,
/// so an hour and its day are separate partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Partition {
    /// A calendar day.
    Day(Date),
    /// An hour (0 to 23) of a day.
    Hour(Date, u8),
}

impl Partition {
    /// Today in UTC, as a day.
    pub fn today() -> Partition {
        Partition::Day(Date::today())
    }

    /// The hour `hour` (0 to 23) of `date`; `None` for another hour.
    pub fn hour_of(date: Date, hour: u32) -> Option<Partition> {
        u8::try_from(hour)
            .ok()
            .filter(|hour| *hour < 24)
            .map(|hour| Partition::Hour(date, hour))
    }

    /// Its day (for an hour, the day it is in).
    pub fn date(self) -> Date {
        match self {
            Partition::Day(date) | Partition::Hour(date, _) => date,
        }
    }

    /// Its hour, for an hour.
    pub fn hour(self) -> Option<u8> {
        match self {
            Partition::Day(_) => None,
            Partition::Hour(_, hour) => Some(hour),
        }
    }

    /// The partition after it, of the same kind: the next day, or the next hour.
    pub fn next(self) -> Partition {
        match self {
            Partition::Day(date) => Partition::Day(date.next()),
            Partition::Hour(date, 23) => Partition::Hour(date.next(), 0),
            Partition::Hour(date, hour) => Partition::Hour(date, hour + 1),
        }
    }

    /// Whether the two are of the same kind (both days or both hours).
    pub fn same_kind(self, other: Partition) -> bool {
        self.hour().is_some() == other.hour().is_some()
    }

    /// Where it starts, as a wall-clock time: `2026-11-26 05:00:00`. Compare it with local
    /// timestamps of the partition's time zone (a schedule's; for a run started by hand, the
    /// one the dates were meant in): `created_at >= start AND created_at < end`.
    pub fn start(self) -> String {
        let (date, hour) = self.start_parts();
        format!("{date} {hour:02}:00:00")
    }

    /// Where it ends (excluded): the start of the next partition.
    pub fn end(self) -> String {
        self.next().start()
    }

    /// Its start as Unix milliseconds, for timestamps kept in UTC.
    pub fn start_millis_utc(self) -> i64 {
        let (date, hour) = self.start_parts();
        date.days_since_epoch() * 86_400_000 + i64::from(hour) * 3_600_000
    }

    /// Its end (excluded) as Unix milliseconds, for timestamps kept in UTC.
    pub fn end_millis_utc(self) -> i64 {
        self.next().start_millis_utc()
    }

    fn start_parts(self) -> (Date, u8) {
        match self {
            Partition::Day(date) => (date, 0),
            Partition::Hour(date, hour) => (date, hour),
        }
    }
}

impl From<Date> for Partition {
    fn from(date: Date) -> Partition {
        Partition::Day(date)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Day(date) => write!(f, "{date}"),
            Partition::Hour(date, hour) => write!(f, "{date}T{hour:02}"),
        }
    }
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Partition, String> {
        let invalid = || {
            format!(
                "invalid partition {text:?}: use YYYY-MM-DD for a day or YYYY-MM-DDTHH for an \
                 hour, e.g. 2026-11-26 or 2026-11-26T05"
            )
        };
        let Some((day, hour)) = text.split_once('T') else {
            return text.parse().map(Partition::Day).map_err(|_| invalid());
        };
        let date: Date = day.parse().map_err(|_| invalid())?;
        if hour.len() != 2 || !hour.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let hour: u32 = hour.parse().map_err(|_| invalid())?;
        Partition::hour_of(date, hour).ok_or_else(invalid)
    }
}

/// A partition as its text (`2026-11-26`, `2026-11-26T05`) in serialized records.
pub(crate) mod partition_text {
    use super::Partition;

    pub fn serialize<S: serde::Serializer>(
        partition: &Partition,
        to: S,
    ) -> Result<S::Ok, S::Error> {
        to.collect_str(partition)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Partition, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(from)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds since the Unix epoch: how the state store keeps time.
#[doc(hidden)]
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-26 09:41:07` (UTC) for a timestamp in milliseconds.
pub(crate) fn format_timestamp(millis: i64) -> String {
    let date = Date {
        days: millis.div_euclid(86_400_000),
    };
    let seconds = millis.rem_euclid(86_400_000) / 1000;
    format!(
        "{date} {:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// `850ms`, `12.3s`, `4m05s`, `2h03m`: short and readable in tables and messages.
pub(crate) fn format_duration(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", duration.as_secs_f64()),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::{Date, Partition, format_duration, format_timestamp};
    use std::time::Duration;

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h03m");
    }

    #[test]
    fn parses_and_prints_dates() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2026-11-26",
            "2026-12-31",
            "1969-07-20",
        ] {
            let date: Date = text.parse().expect(text);
            assert_eq!(date.to_string(), text);
        }
        let date: Date = "2026-12-31".parse().expect("valid");
        assert_eq!(date.next().to_string(), "2027-01-01");
        let date: Date = "2028-02-28".parse().expect("valid");
        assert_eq!(date.next().to_string(), "2028-02-29");
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-1",
            "yesterday",
            "2026-11-26x",
            "+202-01-01",
            "2026-+3-+1",
            "2026- 3- 1",
            "",
        ] {
            let err = bad.parse::<Date>().expect_err(bad);
            assert!(err.contains("YYYY-MM-DD"), "{err}");
        }
    }

    #[test]
    fn partitions_are_days_or_hours() {
        let hour: Partition = "2026-12-31T23".parse().expect("an hour");
        assert_eq!(hour.to_string(), "2026-12-31T23");
        assert_eq!(hour.next().to_string(), "2027-01-01T00");
        assert_eq!(hour.start(), "2026-12-31 23:00:00");
        assert_eq!(hour.end(), "2027-01-01 00:00:00");
        assert_eq!(hour.end_millis_utc() - hour.start_millis_utc(), 3_600_000);
        let day: Partition = "2026-11-26".parse().expect("a day");
        assert_eq!(
            day,
            Partition::Day(Date::from_ymd(2026, 11, 26).expect("a date"))
        );
        assert_eq!(
            (day.start(), day.end()),
            ("2026-11-26 00:00:00".into(), "2026-11-27 00:00:00".into())
        );
        assert_eq!(day.start_millis_utc(), 1_795_651_200_000);
        assert!(!day.same_kind(hour) && hour.same_kind(hour.next()));
        for bad in [
            "2026-11-26T24",
            "2026-11-26T5",
            "2026-11-26T",
            "2026-11-26T05:00",
            "2026-11-26t05",
            "2026-02-30T01",
            "T05",
        ] {
            let err = bad.parse::<Partition>().expect_err(bad);
            assert!(
                err.contains("YYYY-MM-DD for a day or YYYY-MM-DDTHH for an hour"),
                "{err}"
            );
        }
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(format_timestamp(1_795_000_000_000), "2026-11-18 11:06:40");
    }
}
