//! What `/health/live` and `/health/ready` report: whether the worker's two loops (the
//! heartbeat and the fetch loop) still turn, and whether the last Redis round trip worked.
//!
//! Liveness must not depend on Redis (an outage would restart every pod), only on the
//! process making progress: each loop's turn is bounded by its Redis timeouts (a heartbeat
//! turn by two 5 s requests plus its back-off, a fetch turn by the block time plus 3 s), so a
//! loop that has not turned for [`STALL_AFTER`] is wedged, and Kubernetes should restart it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// A loop that has not turned for this long is stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// Liveness signals of one process.
#[derive(Debug)]
pub struct Health {
    heartbeat: Mutex<Instant>,
    fetch: Mutex<Instant>,
    /// The fetch loop waits for a free worker slot (long jobs are not a stall).
    fetch_waiting: AtomicBool,
    /// The fetch loop has ended (quiet or stopping): nothing to watch.
    fetch_stopped: AtomicBool,
    redis_ok: AtomicBool,
    /// Since when the heartbeat has reached Redis on every try (start counts as a failure:
    /// before it, this process knows nothing of what others could do).
    redis_unbroken_since: Mutex<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        let now = Instant::now();
        Health {
            heartbeat: Mutex::new(now),
            fetch: Mutex::new(now),
            fetch_waiting: AtomicBool::new(false),
            fetch_stopped: AtomicBool::new(false),
            redis_ok: AtomicBool::new(true),
            redis_unbroken_since: Mutex::new(now),
        }
    }
}

/// The verdict of `/health/live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Seconds since the heartbeat loop last turned.
    pub heartbeat_secs: u64,
    /// Seconds since the fetch loop last turned (0 while it waits for a slot or has ended).
    pub fetch_secs: u64,
}

impl Liveness {
    /// Both loops turned within [`STALL_AFTER`].
    pub fn is_alive(&self) -> bool {
        self.heartbeat_secs <= STALL_AFTER.as_secs() && self.fetch_secs <= STALL_AFTER.as_secs()
    }
}

impl Health {
    /// The heartbeat loop turned (whether or not Redis answered).
    pub fn heartbeat_turned(&self) {
        *self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The fetch loop turned.
    pub fn fetch_turned(&self) {
        *self.fetch.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The fetch loop starts or stops waiting for a free worker slot.
    pub fn fetch_waits_for_slot(&self, waiting: bool) {
        self.fetch_waiting.store(waiting, Ordering::Relaxed);
    }

    /// The fetch loop has ended.
    pub fn fetch_stopped(&self) {
        self.fetch_stopped.store(true, Ordering::Relaxed);
    }

    /// How long each loop has gone without turning.
    pub fn liveness(&self) -> Liveness {
        let since = |m: &Mutex<Instant>| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                .as_secs()
        };
        let fetch_idle = self.fetch_waiting.load(Ordering::Relaxed)
            || self.fetch_stopped.load(Ordering::Relaxed);
        Liveness {
            heartbeat_secs: since(&self.heartbeat),
            fetch_secs: if fetch_idle { 0 } else { since(&self.fetch) },
        }
    }

    /// A heartbeat could not reach Redis: for a while, others may not have reached it either.
    pub fn heartbeat_failed(&self) {
        *self
            .redis_unbroken_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long every heartbeat of this process has reached Redis. While this is shorter
    /// than a heartbeat's lifetime, another process's expired heartbeat may only mean that
    /// Redis was unreachable (or hung, or restarted) for everyone, not that it died.
    pub fn redis_unbroken_for(&self) -> Duration {
        self.redis_unbroken_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Whether the last Redis round trip of a loop worked.
    pub fn redis_ok(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed)
    }

    /// Records how the last Redis round trip went.
    pub fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_turning_fails_liveness() {
        let h = Health::default();
        tokio::time::advance(Duration::from_secs(20)).await;
        h.heartbeat_turned();
        h.fetch_turned();
        assert!(h.liveness().is_alive());
        tokio::time::advance(Duration::from_secs(31)).await;
        h.heartbeat_turned();
        let l = h.liveness();
        assert_eq!(l.fetch_secs, 31);
        assert!(!l.is_alive(), "the fetch loop is wedged");
        h.fetch_waits_for_slot(true);
        assert!(h.liveness().is_alive(), "waiting for a slot is not a stall");
        h.fetch_waits_for_slot(false);
        h.fetch_stopped();
        assert!(h.liveness().is_alive(), "a quiet process has no fetch loop");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(!h.liveness().is_alive(), "the heartbeat is wedged");
    }
}
