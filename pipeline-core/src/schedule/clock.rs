//! Where the scheduler reads the time: the system clock, or a clock that a test moves, so that
//! ticks, catch-up, overlaps and deadlines are tested in milliseconds rather than hours.

use std::sync::Arc;

use tokio::sync::watch;

use crate::date::now_millis;

/// The scheduler's time, in Unix milliseconds.
#[derive(Clone, Debug)]
pub struct Clock {
    /// `None`: the system clock.
    manual: Option<Arc<watch::Sender<i64>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start_ms` until [`Clock::set`] moves it.
    pub fn manual(start_ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(watch::Sender::new(start_ms))),
        }
    }

    /// Moves a manual clock (never backwards); the system clock ignores it.
    pub fn set(&self, ms: i64) {
        if let Some(manual) = &self.manual {
            manual.send_modify(|now| *now = (*now).max(ms));
        }
    }

    /// Now.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(manual) => *manual.borrow(),
            None => now_millis(),
        }
    }

    /// Returns when the clock reads `ms` or later.
    pub(crate) async fn sleep_until(&self, ms: i64) {
        match &self.manual {
            Some(manual) => {
                let mut now = manual.subscribe();
                // The sender lives as long as `self`: this waits until the clock is moved.
                let _ = now.wait_for(|now| *now >= ms).await;
            }
            None => {
                let pause = (ms - now_millis()).max(0) as u64;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
        }
    }
}
