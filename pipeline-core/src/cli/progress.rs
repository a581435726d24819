//! Progress while a run goes: a live bar on a terminal, one log line per task otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::{Observer, TaskReport};
use crate::status::TaskStatus;
use crate::sync::LockUnpoisoned as _;

pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub enum Progress {
    /// The bar, and the tasks running or waiting for a pool now.
    Bar(ProgressBar, Mutex<Board>),
    Lines,
    Silent,
}

/// Running tasks named on the bar; the rest are counted.
const NAMED_ON_BAR: usize = 4;

/// What the bar says besides its count.
#[derive(Default)]
pub struct Board {
    /// In the order they started.
    running: Vec<String>,
    /// Tasks waiting for a slot of their pool.
    waiting: Vec<String>,
}

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
            Progress::Bar(bar, Mutex::new(Board::default()))
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

/// Changes the board and shows it on the bar.
fn show(bar: &ProgressBar, board: &Mutex<Board>, change: impl FnOnce(&mut Board)) {
    let mut board = board.lock_unpoisoned();
    change(&mut board);
    let named = board
        .running
        .iter()
        .take(NAMED_ON_BAR)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut message = match board.running.len() {
        0 => String::new(),
        n if n <= NAMED_ON_BAR => format!("running {named}"),
        n => format!("running {named} and {} more", n - NAMED_ON_BAR),
    };
    if !board.waiting.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&format!("{} waiting for a pool", board.waiting.len()));
    }
    bar.set_message(message);
}

fn remove(names: &mut Vec<String>, name: &str) {
    if let Some(at) = names.iter().position(|known| known == name) {
        names.remove(at);
    }
}

impl Observer for Progress {
    fn planned(&self, tasks: usize, skipped: usize) {
        match self {
            Progress::Bar(bar, _) => bar.set_length(tasks as u64),
            Progress::Lines => tracing::info!("{tasks} tasks, {skipped} already complete"),
            Progress::Silent => {}
        }
    }

    fn waiting(&self, task: &str, pool: &str) {
        match self {
            Progress::Bar(bar, board) => {
                show(bar, board, |board| board.waiting.push(task.to_string()));
            }
            Progress::Lines => tracing::info!("{task} waits for a slot of the pool `{pool}`"),
            Progress::Silent => {}
        }
    }

    fn started(&self, task: &str) {
        match self {
            Progress::Bar(bar, board) => {
                show(bar, board, |board| {
                    remove(&mut board.waiting, task);
                    board.running.push(task.to_string());
                });
            }
            Progress::Lines => tracing::info!("started {task}"),
            Progress::Silent => {}
        }
    }

    fn finished(&self, task: &TaskReport) {
        match self {
            Progress::Bar(bar, board) => {
                show(bar, board, |board| {
                    remove(&mut board.running, &task.name);
                    // Cancelled while it waited.
                    remove(&mut board.waiting, &task.name);
                });
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
