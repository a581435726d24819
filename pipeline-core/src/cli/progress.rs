//! Progress while a run goes: a live bar on a terminal, one log line per task otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::LockUnpoisoned as _;
use crate::run::{Observer, TaskReport};
use crate::status::TaskStatus;

pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub enum Progress {
    /// The bar, and the tasks running now, in the order they started.
    Bar(ProgressBar, Mutex<Vec<String>>),
    Lines,
    Silent,
}

/// Running tasks named on the bar; the rest are counted.
const NAMED_ON_BAR: usize = 4;

impl Progress {
    /// A bar on a terminal, log lines elsewhere; nothing when `visible` is false.
    pub fn new(visible: bool) -> Self {
        if !visible {
            Progress::Silent
        } else if is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress::Bar(bar, Mutex::new(Vec::new()))
        } else {
            Progress::Lines
        }
    }

    pub fn clear(&self) {
        if let Progress::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}

/// Adds or removes a running task and shows the set on the bar.
fn show_running(
    bar: &ProgressBar,
    running: &Mutex<Vec<String>>,
    change: impl FnOnce(&mut Vec<String>),
) {
    let mut running = running.lock_unpoisoned();
    change(&mut running);
    let named = running
        .iter()
        .take(NAMED_ON_BAR)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let message = match running.len() {
        0 => String::new(),
        n if n <= NAMED_ON_BAR => format!("running {named}"),
        n => format!("running {named} and {} more", n - NAMED_ON_BAR),
    };
    bar.set_message(message);
}

impl Observer for Progress {
    fn planned(&self, tasks: usize, skipped: usize) {
        match self {
            Progress::Bar(bar, _) => bar.set_length(tasks as u64),
            Progress::Lines => tracing::info!("{tasks} tasks, {skipped} already complete"),
            Progress::Silent => {}
        }
    }

    fn started(&self, task: &str) {
        match self {
            Progress::Bar(bar, running) => {
                show_running(bar, running, |running| running.push(task.to_string()));
            }
            Progress::Lines => tracing::info!("started {task}"),
            Progress::Silent => {}
        }
    }

    fn finished(&self, task: &TaskReport) {
        match self {
            Progress::Bar(bar, running) => {
                if task.attempts > 0 {
                    show_running(bar, running, |running| {
                        if let Some(at) = running.iter().position(|name| *name == task.name) {
                            running.remove(at);
                        }
                    });
                }
                bar.inc(1);
                if !task.status.is_success() {
                    bar.println(format!("{} {}", task.status, task.name));
                }
            }
            Progress::Lines if task.status == TaskStatus::Skipped => {}
            Progress::Lines if task.status.is_success() => {
                tracing::info!(
                    "{} {} in {}",
                    task.status,
                    task.name,
                    crate::date::format_duration(Duration::from_millis(task.duration_ms))
                );
            }
            Progress::Lines => {
                tracing::warn!(
                    "{} {}: {}",
                    task.status,
                    task.name,
                    task.error.as_deref().unwrap_or("")
                );
            }
            Progress::Silent => {}
        }
    }
}
