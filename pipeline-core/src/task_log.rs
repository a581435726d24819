//! Each attempt's own log: the events logged inside its `task` span (what the task's code and
//! the runtime say about it, at the configured level), kept per attempt while it runs and
//! stored with it when it ends, so that `daily logs` shows it after the run's output is gone.
//! Bounded: the first and the last [`KEEP_BYTES`] are kept, and the log says how much was left
//! out between them. Secrets are redacted as in every other log line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::sync::LockUnpoisoned as _;

/// Bytes kept at the start of a log, and as many at its end.
pub const KEEP_BYTES: usize = 16 * 1024;

/// An attempt: its run, task and number.
type AttemptKey = (i64, String, u32);

#[derive(Default)]
struct Log {
    head: String,
    /// The newest lines after the head, at most about [`KEEP_BYTES`].
    tail: std::collections::VecDeque<String>,
    tail_bytes: usize,
    left_out: usize,
}

impl Log {
    fn push(&mut self, line: String) {
        if self.head.len() + line.len() <= KEEP_BYTES {
            self.head.push_str(&line);
            return;
        }
        self.tail_bytes += line.len();
        self.tail.push_back(line);
        while self.tail_bytes > KEEP_BYTES && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
                self.left_out += old.len();
            }
        }
        // One line longer than the whole tail: keep its end.
        if self.tail_bytes > KEEP_BYTES
            && let Some(only) = self.tail.front_mut()
        {
            let mut cut = only.len() - KEEP_BYTES;
            while !only.is_char_boundary(cut) {
                cut += 1;
            }
            self.left_out += cut;
            self.tail_bytes -= cut;
            only.replace_range(..cut, "");
        }
    }

    fn text(&self) -> String {
        let mut text = self.head.clone();
        if self.left_out > 0 {
            let _ = writeln!(text, "... {} bytes of log left out ...", self.left_out);
        }
        text.extend(self.tail.iter().map(String::as_str));
        text
    }
}

/// The logs so far, by run and attempt number, then by task: found by a task's name without
/// making a key of it (every attempt looks its log up as it ends).
type Logs = HashMap<(i64, u32), HashMap<String, Log>>;

fn logs() -> &'static Mutex<Logs> {
    static LOGS: OnceLock<Mutex<Logs>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// The log of an attempt so far, taken out: `None` when it logged nothing.
pub(crate) fn take(run_id: i64, task: &str, attempt: u32) -> Option<String> {
    let mut logs = logs().lock_unpoisoned();
    let of_attempt = logs.get_mut(&(run_id, attempt))?;
    let log = of_attempt.remove(task)?;
    if of_attempt.is_empty() {
        logs.remove(&(run_id, attempt));
    }
    Some(log.text())
}

/// The log of a running attempt so far, left in place; `None` when it logged nothing yet.
pub(crate) fn snapshot(run_id: i64, task: &str, attempt: u32) -> Option<String> {
    logs()
        .lock_unpoisoned()
        .get(&(run_id, attempt))?
        .get(task)
        .map(Log::text)
}

/// The span an attempt runs in: what is logged inside it is kept with the attempt, and its
/// fields say whose it is (on stderr: `task{task=.. attempt=.. run=..}`). At the error level,
/// so that it exists whatever level the log is at: as an INFO span it was left out at WARN
/// (the default on a terminal), and so were the attempt's warnings and errors from its log.
pub(crate) fn attempt_span(run: i64, task: &str, attempt: u32) -> tracing::Span {
    tracing::error_span!("task", task = %task, attempt, run)
}

/// The layer that keeps the lines of events inside a `task` span with its attempt. Placed
/// before the stderr layer, it also writes an attempt's span fields as stderr shows them: the
/// stderr layer formats a span's fields only when no layer did, and its general formatting of
/// them (for every attempt, beside this layer's reading of them) was a tenth of a run of
/// 100,000 short tasks.
pub(crate) struct Capture;

/// The attempt a `task` span stands for, kept in the span's extensions.
struct Attempt(AttemptKey);

/// The fields of an attempt's span.
#[derive(Default)]
struct SpanFields {
    run: Option<i64>,
    task: Option<String>,
    attempt: Option<u32>,
}

impl Visit for SpanFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "run" => self.run = Some(value),
            "attempt" => self.attempt = u32::try_from(value).ok(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "run" => self.run = i64::try_from(value).ok(),
            "attempt" => self.attempt = u32::try_from(value).ok(),
            _ => {}
        }
    }

    /// `task` comes as `%task` ([`attempt_span`]): its `Debug` is its `Display`.
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "task" {
            self.task = Some(format!("{value:?}"));
        }
    }
}

/// An event's message and fields, as its attempt's log line shows them: the attempt's own
/// `task`, `run` and `attempt` are left out (the log is theirs).
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !matches!(field.name(), "run" | "attempt") {
            self.record_debug(field, &value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !matches!(field.name(), "run" | "attempt") {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "task" => {}
            "message" => {
                let _ = write!(self.0, " {value:?}");
            }
            name => {
                let _ = write!(self.0, " {name}={value:?}");
            }
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "task" {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if let SpanFields {
            run: Some(run),
            task: Some(task),
            attempt: Some(attempt),
        } = fields
        {
            let mut extensions = span.extensions_mut();
            extensions.insert(FormattedFields::<DefaultFields>::new(format!(
                "task={task} attempt={attempt} run={run}"
            )));
            extensions.insert(Attempt((run, task, attempt)));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(key) = scope
            .into_iter()
            .find_map(|span| span.extensions().get::<Attempt>().map(|a| a.0.clone()))
        else {
            return;
        };
        let mut fields = Line::default();
        event.record(&mut fields);
        let line = format!(
            "{} {:>5}{}\n",
            crate::date::format_timestamp(crate::date::now_millis()),
            event.metadata().level(),
            fields.0
        );
        let line = crate::secrets::redact(&line);
        let (run_id, task, attempt) = key;
        logs()
            .lock_unpoisoned()
            .entry((run_id, attempt))
            .or_default()
            .entry(task)
            .or_default()
            .push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// What a test's stderr layer wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock_unpoisoned().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The names of the fields of the spans it sees, as another program's subscriber would.
    #[derive(Clone, Default)]
    struct SpanFieldNames(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> tracing_subscriber::Layer<S> for SpanFieldNames {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            let names = attrs.fields().iter().map(|field| field.name().to_string());
            self.0.lock_unpoisoned().extend(names);
        }
    }

    #[test]
    fn at_the_warn_level_an_attempts_warnings_are_kept_with_it() {
        // As on a terminal, where a run's progress bar stands for its INFO lines.
        let subscriber = tracing_subscriber::registry()
            .with(Capture)
            .with(tracing_subscriber::filter::LevelFilter::WARN);
        tracing::subscriber::with_default(subscriber, || {
            let _entered = attempt_span(8, "export", 1).entered();
            tracing::info!("wrote 3 files");
            tracing::warn!("the bucket is 95% full");
        });
        let log = take(8, "export", 1).expect("the attempt's log");
        assert!(log.ends_with(" WARN the bucket is 95% full\n"), "{log}");
        assert!(!log.contains("wrote 3 files"), "{log}");
    }

    #[test]
    fn an_attempts_span_names_it_on_stderr_in_its_log_and_to_other_subscribers() {
        let written = Written::default();
        let seen = SpanFieldNames::default();
        let stderr = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .with_writer({
                let written = written.clone();
                move || written.clone()
            });
        let subscriber = tracing_subscriber::registry()
            .with(Capture)
            .with(stderr)
            .with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let _entered = attempt_span(7, "load_users", 2).entered();
            tracing::info!("loaded 12 rows");
        });
        let stderr = String::from_utf8_lossy(&written.0.lock_unpoisoned()).to_string();
        assert_eq!(
            stderr.trim(),
            "INFO task{task=load_users attempt=2 run=7}: loaded 12 rows"
        );
        let log = take(7, "load_users", 2).expect("the attempt's log");
        assert!(log.ends_with(" INFO loaded 12 rows\n"), "{log}");
        assert_eq!(*seen.0.lock_unpoisoned(), ["task", "attempt", "run"]);
    }

    #[test]
    fn a_long_log_keeps_its_start_and_its_end_and_says_how_much_is_left_out() {
        let mut log = Log::default();
        for i in 0..10_000 {
            log.push(format!("line {i:05}\n"));
        }
        let text = log.text();
        assert!(text.starts_with("line 00000\n"), "{}", &text[..40]);
        assert!(text.ends_with("line 09999\n"));
        assert!(text.len() <= 2 * KEEP_BYTES + 100, "{}", text.len());
        let left_out: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("... "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the gap is named");
        let kept: usize = text
            .lines()
            .filter(|line| line.starts_with("line "))
            .map(|line| line.len() + 1)
            .sum();
        assert_eq!(
            left_out + kept,
            10_000 * 11,
            "every byte is kept or counted"
        );
    }

    #[test]
    fn one_huge_line_keeps_its_end() {
        let mut log = Log::default();
        log.push("start\n".into());
        log.push(format!("{}\n", "x".repeat(3 * KEEP_BYTES)));
        let text = log.text();
        assert!(text.starts_with("start\n"));
        assert!(text.contains("bytes of log left out"));
        assert!(text.len() < 2 * KEEP_BYTES + 100);
    }
}
