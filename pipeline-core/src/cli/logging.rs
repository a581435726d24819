//! Logs on stderr, with secrets redacted (task code logs what it likes). On a terminal they are
//! written as they come (the progress bar shows the rest). Elsewhere (cron, CI, containers:
//! production) a run logs a line per task, so lines are gathered and written together: at
//! most [`FLUSH_EVERY`] late, at once for warnings and errors, and before the process exits.
//! One writer keeps every line in order.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::sync::LockUnpoisoned as _;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full is written at once.
const FLUSH_AT_BYTES: usize = 64 * 1024;

/// `PIPELINE_LOG` (error, warn, info, debug, trace) sets the level; `quiet` makes the default
/// WARN instead of INFO.
pub fn init(quiet: bool, terminal: bool) {
    let default = if quiet {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    };
    let level = std::env::var("PIPELINE_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(default);
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let stderr = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(terminal)
        .with_writer(Buffered { at_once: terminal });
    // Each attempt's own lines are kept with it as well (`daily logs`). The capture comes
    // first: it writes the fields of an attempt's span for the stderr layer.
    let _ = tracing_subscriber::registry()
        .with(crate::task_log::Capture)
        .with(stderr)
        .with(filter)
        .try_init();
}

/// Writes out whatever is buffered; call before the process exits.
pub fn flush() {
    if let Some(buffer) = BUFFER.get() {
        write_out(&mut lock(buffer));
    }
}

static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer.lock_unpoisoned()
}

fn write_out(buffer: &mut Vec<u8>) {
    if !buffer.is_empty() {
        // Nothing sensible can be done when stderr is gone.
        let _ = std::io::stderr().write_all(buffer);
        buffer.clear();
    }
}

/// The buffer, created with the thread that writes it out every [`FLUSH_EVERY`].
fn buffer() -> &'static Mutex<Vec<u8>> {
    BUFFER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("pipeline-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
        if spawned.is_err() {
            eprintln!("warning: cannot start the log writer thread; logs may come late");
        }
        Mutex::new(Vec::with_capacity(FLUSH_AT_BYTES))
    })
}

/// The stderr writer handed to `tracing_subscriber`; `at_once` writes every line as it comes.
struct Buffered {
    at_once: bool,
}

/// One log line on its way into the buffer.
struct Line {
    text: Vec<u8>,
    urgent: bool,
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            text: Vec::new(),
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            text: Vec::new(),
            urgent: self.at_once || *meta.level() <= tracing::Level::WARN,
        }
    }
}

impl std::io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = crate::secrets::redact(&String::from_utf8_lossy(&self.text));
        let mut buffer = lock(buffer());
        buffer.extend_from_slice(text.as_bytes());
        if self.urgent || buffer.len() >= FLUSH_AT_BYTES {
            write_out(&mut buffer);
        }
    }
}
