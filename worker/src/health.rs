//! What `/health/live` and `/health/ready` report: whether the worker's loops are turning,
//! and whether the last Redis round trip of a loop worked.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

/// Liveness signals of one process.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Seconds since `started` at which a loop last turned.
    last_tick: AtomicI64,
    redis_ok: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            last_tick: AtomicI64::new(0),
            redis_ok: AtomicBool::new(true),
        }
    }
}

impl Health {
    /// A loop turned (the fetch loop or the heartbeat).
    pub fn tick(&self) {
        self.last_tick
            .store(self.started.elapsed().as_secs() as i64, Ordering::Relaxed);
    }

    /// Seconds since a loop last turned.
    pub fn since_tick(&self) -> i64 {
        self.started.elapsed().as_secs() as i64 - self.last_tick.load(Ordering::Relaxed)
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
