//! Ctrl-C and SIGTERM: the first cancels what runs, the second ends the process.

use tokio::sync::watch;

use super::{EXIT_CANCELLED, logging};

/// Ctrl-C or SIGTERM cancels the run; a second one ends the process at once. The handlers are
/// installed before this returns, so a signal that comes right after is never missed.
pub(super) fn watch_signals(first: &'static str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let Some(mut signals) = Signals::install() else {
        tracing::warn!("cannot watch for Ctrl-C and SIGTERM: a signal ends the run at once");
        return rx;
    };
    tokio::spawn(async move {
        for count in 0.. {
            signals.next().await;
            logging::flush();
            if count == 0 {
                // Not `eprintln!`, which panics when stderr is gone (a closed pipe): this task
                // must live to pass the signal on, or the process could not be stopped.
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("\n{first} (signal again to exit at once)\n"),
                );
                let _ = tx.send(true);
            } else {
                std::process::exit(i32::from(EXIT_CANCELLED));
            }
        }
    });
    rx
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Signals {
                interrupt: signal(SignalKind::interrupt()).ok()?,
                terminate: signal(SignalKind::terminate()).ok()?,
            })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
