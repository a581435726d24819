//! Cron expressions as crontab(5) writes them: five fields, `minute hour day-of-month month
//! day-of-week` (or six, with seconds first: `*/5 * * * * *`), each `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those;
//! month and weekday names (`jan`, `mon`); weekday 7 is Sunday as 0 is; and `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly`.
//!
//! This file is std only: `pipeline-macros` compiles it too (`#[path]`), so that a malformed
//! expression is a compile error with the same words as at run time.

/// A parsed expression: the values each field allows, as bit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday first.
    weekdays: u8,
    /// Day of month was `*`: only the weekday restricts days.
    any_day: bool,
    /// Day of week was `*`: only the day of month restricts days.
    any_weekday: bool,
}

/// One field's name, range and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// 0-7: both 0 and 7 are Sunday.
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Cron {
    /// Parses an expression; the error says which field is wrong and how.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!(
                    "unknown shorthand `{other}`: use @hourly, @daily, @weekly, @monthly or @yearly"
                ));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (second, [minute, hour, day, month, weekday]) = match fields[..] {
            [minute, hour, day, month, weekday] => ("0", [minute, hour, day, month, weekday]),
            [second, minute, hour, day, month, weekday] => {
                (second, [minute, hour, day, month, weekday])
            }
            _ => {
                return Err(format!(
                    "`{text}` has {} fields; a cron expression has five: minute hour \
                     day-of-month month day-of-week (e.g. `0 2 * * *`), or six with seconds first",
                    fields.len()
                ));
            }
        };
        let weekdays = parse_field(weekday, &WEEKDAY)?;
        // Weekday 7 is Sunday.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        let cron = Cron {
            seconds: parse_field(second, &SECOND)?,
            minutes: parse_field(minute, &MINUTE)?,
            hours: parse_field(hour, &HOUR)? as u32,
            days: parse_field(day, &DAY)? as u32,
            months: parse_field(month, &MONTH)? as u16,
            weekdays: weekdays as u8,
            any_day: day == "*",
            any_weekday: weekday == "*",
        };
        if !cron.fires_some_day() {
            return Err(format!(
                "`{text}` never fires: no month has that day of month"
            ));
        }
        Ok(cron)
    }

    /// Whether the expression allows this day. When both day of month and day of week are
    /// restricted, either one matching is enough, as in crontab(5).
    pub fn matches_day(&self, day: u8, month: u8, weekday: u8) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The hours allowed, ascending.
    pub fn hours(&self) -> impl Iterator<Item = u8> + '_ {
        (0..24u8).filter(|hour| self.hours & (1 << hour) != 0)
    }

    /// The seconds allowed, ascending (only 0 for five fields).
    pub fn seconds(&self) -> impl Iterator<Item = u8> + '_ {
        (0..60u8).filter(|second| self.seconds & (1 << second) != 0)
    }

    /// Whether it has a seconds field that allows more than second 0.
    pub fn has_seconds(&self) -> bool {
        self.seconds != 1
    }

    /// The minutes allowed, ascending.
    pub fn minutes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..60u8).filter(|minute| self.minutes & (1 << minute) != 0)
    }

    /// False for expressions such as `0 0 30 2 *`, which name no day that exists.
    fn fires_some_day(&self) -> bool {
        const LONGEST: [u8; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        if !self.any_weekday {
            // Every weekday occurs in every month.
            return self.months != 0 && self.weekdays != 0;
        }
        (1..=12).any(|month| {
            self.months & (1 << month) != 0
                && (1..=LONGEST[month]).any(|day| self.days & (1 << day) != 0)
        })
    }
}

/// One field as a bit set of the values it allows.
fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                    format!(
                        "{} field `{text}`: the step `{step}` is not a positive number",
                        field.name
                    )
                })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low, text, field)?, value(high, text, field)?)
        } else {
            let low = value(range, text, field)?;
            // `5/15` means from 5 to the end, every 15.
            (low, if step > 1 { field.max } else { low })
        };
        if low > high {
            return Err(format!(
                "{} field `{text}`: the range {low}-{high} runs backwards",
                field.name
            ));
        }
        for value in (low..=high).step_by(step as usize) {
            bits |= 1 << value;
        }
    }
    Ok(bits)
}

/// A number or a name of a field, checked against its range.
fn value(text: &str, field_text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    let named = field.names.iter().position(|name| *name == lower);
    let value = match named {
        Some(index) => index as u32 + field.min,
        None => text.parse::<u32>().map_err(|_| {
            let names = if field.names.is_empty() {
                String::new()
            } else {
                format!(" or a name ({})", field.names.join(", "))
            };
            format!(
                "{} field `{field_text}`: `{text}` is not a number{names}",
                field.name
            )
        })?,
    };
    if !(field.min..=field.max).contains(&value) {
        return Err(format!(
            "{} field `{field_text}`: {value} is out of range {}-{}",
            field.name, field.min, field.max
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_steps_ranges_lists_and_names() {
        let cron = Cron::parse("*/15 9-17 * jan,JUL mon-fri").expect("valid");
        assert_eq!(cron.minutes().collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(cron.hours().count(), 9);
        assert!(cron.matches_day(6, 1, 1)); // a Monday in January
        assert!(!cron.matches_day(6, 1, 0)); // a Sunday
        assert!(!cron.matches_day(6, 2, 1)); // February
        let sunday = Cron::parse("0 0 * * 7").expect("valid");
        assert!(sunday.matches_day(1, 1, 0));
        let from_five = Cron::parse("5/20 * * * *").expect("valid");
        assert_eq!(from_five.minutes().collect::<Vec<_>>(), [5, 25, 45]);
        assert_eq!(from_five.seconds().collect::<Vec<_>>(), [0]);
        let every_two_seconds = Cron::parse("*/2 * * * * *").expect("valid");
        assert_eq!(every_two_seconds.seconds().count(), 30);
        assert!(every_two_seconds.has_seconds());
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_given() {
        let cron = Cron::parse("0 0 1 * mon").expect("valid");
        assert!(cron.matches_day(1, 3, 4)); // the first, a Thursday
        assert!(cron.matches_day(9, 3, 1)); // a Monday
        assert!(!cron.matches_day(10, 3, 2));
    }

    #[test]
    fn shorthands() {
        assert_eq!(Cron::parse("@daily"), Cron::parse("0 0 * * *"));
        assert_eq!(Cron::parse("@hourly"), Cron::parse("0 * * * *"));
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let error = |text: &str| Cron::parse(text).expect_err(text);
        assert_eq!(
            error("61 * * * *"),
            "minute field `61`: 61 is out of range 0-59"
        );
        assert!(
            error("0 2 * *").contains("has 4 fields"),
            "{}",
            error("0 2 * *")
        );
        assert_eq!(
            error("0 2 * foo *"),
            "month field `foo`: `foo` is not a number or a name (jan, feb, mar, apr, may, jun, \
             jul, aug, sep, oct, nov, dec)"
        );
        assert_eq!(
            error("*/0 * * * *"),
            "minute field `*/0`: the step `0` is not a positive number"
        );
        assert_eq!(
            error("0 17-9 * * *"),
            "hour field `17-9`: the range 17-9 runs backwards"
        );
        assert!(error("0 0 30 2 *").contains("never fires"));
        assert!(error("@often").contains("unknown shorthand"));
    }
}
