//! Wall-clock time with an adjustable offset, so retry timing can be tested without
//! sleeping for minutes: tests move the worker's clock forward instead.

use sidekiq_wire::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The worker's notion of "now".
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// Now, plus any offset a test added.
    pub fn now(&self) -> Timestamp {
        let offset = self.offset_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        Timestamp::now().plus_secs(offset)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: f64) {
        self.offset_ms
            .fetch_add((secs * 1000.0) as i64, Ordering::Relaxed);
    }
}
