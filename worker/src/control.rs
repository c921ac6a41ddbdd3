//! Quiet and stop: what can be asked of a running worker, from an OS signal or from the Web
//! UI's Busy page, through one table of signal names; and the one [`Deadline`] a stop runs
//! against.
//!
//! Quiet stops fetching (jobs in flight finish). Stop quiets first, then the launcher waits
//! for running jobs until the deadline, pushes the rest back and leaves the Busy page.

use crate::busy::Busy;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Time the final Redis writes of a stop (pushing unfinished jobs back, leaving the Busy
/// page) may take after `SHUTDOWN_TIMEOUT`: they are instant on a healthy Redis and only
/// wait this long while Redis is unreachable.
pub const FINAL_WRITES: Duration = Duration::from_secs(10);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop fetching new jobs (`TSTP`).
    Quiet,
    /// Finish or push back running jobs and exit (`TERM`, `INT`).
    Stop,
    /// Log the running jobs (`TTIN`, `INFO`).
    Dump,
}

impl Signal {
    /// Sidekiq's signal names, the same for OS signals and for the `<identity>-signals` list
    /// the Web UI's Quiet and Stop buttons push to.
    pub fn from_name(name: &str) -> Option<Signal> {
        match name {
            "TSTP" => Some(Signal::Quiet),
            "TERM" | "INT" => Some(Signal::Stop),
            "TTIN" | "INFO" => Some(Signal::Dump),
            _ => None,
        }
    }
}

/// When a stop must be over, computed once when the stop begins: running jobs get
/// `SHUTDOWN_TIMEOUT`, the final writes share the [`FINAL_WRITES`] after it. So a stop never
/// takes longer than `SHUTDOWN_TIMEOUT + 10 s`, the number the pod's grace period must exceed.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    jobs: Instant,
    end: Instant,
}

impl Deadline {
    /// The deadline of a stop beginning now.
    pub fn starting_now(shutdown_timeout: Duration) -> Self {
        let jobs = Instant::now() + shutdown_timeout;
        Deadline {
            jobs,
            end: jobs + FINAL_WRITES,
        }
    }

    /// Until when running jobs may finish on their own.
    pub fn for_jobs(&self) -> Instant {
        self.jobs
    }

    /// When everything, final writes included, must be done.
    pub fn end(&self) -> Instant {
        self.end
    }
}

/// The quiet and stop switches, shared by everything that must react to them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    quiet: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            quiet: watch::channel(false).0,
            stop: watch::channel(false).0,
        }
    }
}

impl Control {
    /// Does what `signal` asks; `busy` is what a dump lists.
    pub fn apply(&self, signal: Signal, busy: &Busy) {
        match signal {
            Signal::Quiet => {
                tracing::info!("quiet: no new jobs will be fetched");
                self.quiet();
            }
            Signal::Stop => {
                tracing::info!("stop requested");
                self.stop();
            }
            Signal::Dump => busy.log_running(),
        }
    }

    /// Stops fetching new jobs.
    pub fn quiet(&self) {
        self.quiet.send_replace(true);
    }

    /// Quiets and starts the stop.
    pub fn stop(&self) {
        self.quiet();
        self.stop.send_replace(true);
    }

    /// Whether fetching has stopped (quiet or stopping).
    pub fn is_quiet(&self) -> bool {
        *self.quiet.borrow()
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the process is quiet (at once if it already is).
    pub async fn quieted(&self) {
        let mut rx = self.quiet.subscribe();
        let _ = rx.wait_for(|q| *q).await;
    }

    /// Resolves once a stop was requested (at once if it already was).
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Sleeps `d`; returns `true` early if the process was quieted meanwhile.
    pub async fn sleep_unless_quiet(&self, d: Duration) -> bool {
        if self.is_quiet() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_quiet(),
            _ = self.quieted() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_for_os_and_web_ui_signals() {
        assert_eq!(Signal::from_name("TSTP"), Some(Signal::Quiet));
        assert_eq!(Signal::from_name("TERM"), Some(Signal::Stop));
        assert_eq!(Signal::from_name("INT"), Some(Signal::Stop));
        assert_eq!(Signal::from_name("TTIN"), Some(Signal::Dump));
        assert_eq!(Signal::from_name("USR1"), None);
    }

    #[tokio::test]
    async fn stop_implies_quiet_and_wakes_sleepers() {
        let c = Control::default();
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep_unless_quiet(Duration::from_secs(3600)).await })
        };
        c.apply(Signal::Stop, &Busy::default());
        assert!(sleeper.await.unwrap());
        assert!(c.is_quiet() && c.is_stopping());
        c.stopped().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_leaves_the_final_writes_their_share() {
        let d = Deadline::starting_now(Duration::from_secs(25));
        assert_eq!(d.end() - d.for_jobs(), FINAL_WRITES);
        assert_eq!(d.for_jobs() - Instant::now(), Duration::from_secs(25));
    }
}
