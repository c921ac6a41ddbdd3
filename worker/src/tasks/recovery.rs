//! The recovery loop: every `RECOVERY_INTERVAL` (with jitter, so processes do not all look at
//! once), give back the in-progress and staging lists of processes that are gone, and count
//! retrying jobs the Web UI killed or deleted as failed.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{progress, recovery};
use rand::Rng;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// What the recovery loop uses.
pub struct Recovery {
    /// Shared Redis connection.
    pub redis: ConnectionManager,
    /// This process's identity (its own lists are left alone).
    pub identity: String,
    /// Base time between passes.
    pub interval: Duration,
    /// Counts recovered jobs.
    pub metrics: Arc<Metrics>,
    /// The worker's clock.
    pub clock: Clock,
}

impl Recovery {
    /// One look for lists of processes that are gone.
    pub async fn recover_once(&self) {
        let mut conn = self.redis.clone();
        match recovery::recover(
            &mut conn,
            &self.identity,
            false,
            self.clock.now().to_score(),
        )
        .await
        {
            Ok(n) => self.metrics.recovered(n),
            Err(e) => tracing::warn!(error = %e, "orphan recovery failed; will retry"),
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut suspects = progress::Suspects::default();
        loop {
            let base = self.interval.as_secs_f64();
            let jitter = rand::rng().random_range(0.75..1.25);
            tokio::time::sleep(Duration::from_secs_f64((base * jitter).max(0.1))).await;
            self.recover_once().await;
            let mut conn = self.redis.clone();
            match progress::reconcile(&mut conn, &mut suspects).await {
                Ok(lost) if !lost.is_empty() => {
                    tracing::info!(jobs = lost.len(), jids = ?lost, "retrying jobs removed outside the worker (Web UI Kill/Delete) now count as failed");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "progress reconciliation failed; will retry"),
            }
        }
    }
}
