//! The fixed sets of outcomes. Strings in the state store, the JSON summary and the CLI come
//! from `Display`/`FromStr` here, never by hand.

use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value as stored and printed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }
    };
}

string_enum! {
    /// What happened to a task in a run (and, while it runs, to its current attempt).
    TaskStatus {
        /// An attempt is in progress (state store only).
        Running = "running",
        /// Its last attempt succeeded.
        Succeeded = "succeeded",
        /// Already complete for the partition: not run again.
        Skipped = "skipped",
        /// Its last attempt failed (or a fatal error ended it).
        Failed = "failed",
        /// A `requires` dependency did not succeed, so the task did not run.
        UpstreamFailed = "upstream_failed",
        /// Its last attempt ran out of its `timeout`.
        TimedOut = "timed_out",
        /// Stopped by Ctrl-C or SIGTERM, or left running by a process that died.
        Cancelled = "cancelled",
        /// A service it needs is not configured here (its error says how to configure it):
        /// not run, not retried, not alerted.
        NotConfigured = "not_configured",
    }
}

impl TaskStatus {
    /// Succeeded now or before: dependents may run.
    pub fn is_success(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Skipped)
    }
}

string_enum! {
    /// The outcome of a whole run.
    RunStatus {
        /// In progress.
        Running = "running",
        /// Every critical task succeeded or was complete already.
        Succeeded = "succeeded",
        /// A critical task did not succeed.
        Failed = "failed",
        /// Stopped by Ctrl-C or SIGTERM.
        Cancelled = "cancelled",
        /// Its process died (killed, machine lost): found out when its lock was found stale.
        Abandoned = "abandoned",
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Severity {
    /// Someone should look during working hours (Slack).
    Low,
    /// Someone must look now (the pager).
    High,
}

impl Severity {
    /// As stored: `low` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::High => "high",
        }
    }

    /// From its stored form; anything but `high` is low.
    pub fn parse(text: &str) -> Severity {
        if text == "high" {
            Severity::High
        } else {
            Severity::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RunStatus, TaskStatus};

    #[test]
    fn statuses_round_trip_through_strings() {
        for status in TaskStatus::ALL {
            assert_eq!(status.to_string().parse::<TaskStatus>(), Ok(*status));
        }
        for status in RunStatus::ALL {
            assert_eq!(status.to_string().parse::<RunStatus>(), Ok(*status));
        }
        assert_eq!(TaskStatus::UpstreamFailed.to_string(), "upstream_failed");
        assert!("done".parse::<TaskStatus>().is_err());
    }
}
