//! The recovery loop: every `RECOVERY_INTERVAL` (with jitter, so processes do not all look at
//! once), give back the in-progress and staging lists of processes that are gone, move
//! poison pills to the dead set, and count retrying jobs the Web UI killed or deleted as
//! failed.
//!
//! A process is judged gone when its heartbeat has expired (60 s). That judgement is only
//! sound if Redis was reachable all that time: after Redis hung, restarted or was cut off,
//! every heartbeat may have expired at once while every process lives. So a process only
//! recovers others' lists once its own heartbeats have reached Redis without a break for
//! longer than a heartbeat lives ([`REDIS_UNBROKEN_FOR`]); by then every live process has
//! beaten again.

use crate::clock::Clock;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::processor::Processor;
use crate::store::{progress, recovery};
use rand::Rng;
use service_runtime::redis_link::RedisLink;
use sidekiq_wire::keys::HEARTBEAT_TTL_SECS;
use std::sync::Arc;
use std::time::Duration;

/// How long this process's heartbeats must have reached Redis before it judges another
/// process gone by its expired heartbeat: a heartbeat's lifetime plus two beats of margin.
pub fn redis_unbroken_for(heartbeat_interval: Duration) -> Duration {
    Duration::from_secs(HEARTBEAT_TTL_SECS as u64) + 2 * heartbeat_interval
}

/// What the recovery loop uses.
pub struct Recovery {
    /// Shared Redis connection.
    pub redis: RedisLink,
    /// This process's identity (its own lists are left alone).
    pub identity: String,
    /// Base time between passes.
    pub interval: Duration,
    /// How long recovered jobs wait before they run again (`RECOVERY_GRACE`).
    pub grace: Duration,
    /// The heartbeat interval (sizes the wait after a Redis outage).
    pub heartbeat_interval: Duration,
    /// Whether Redis has been reachable long enough to judge others.
    pub health: Arc<Health>,
    /// Buries poison pills.
    pub processor: Arc<Processor>,
    /// Counts recovered jobs.
    pub metrics: Arc<Metrics>,
    /// The worker's clock.
    pub clock: Clock,
}

impl Recovery {
    /// One look for lists of processes that are gone, if this process may judge that now.
    pub async fn recover_once(&self) {
        let unbroken = self.health.redis_unbroken_for();
        let needed = redis_unbroken_for(self.heartbeat_interval);
        if unbroken < needed {
            tracing::debug!(
                unbroken_secs = unbroken.as_secs(),
                needed_secs = needed.as_secs(),
                "not judging other processes yet: Redis was unreachable recently (or this process just started)"
            );
            return;
        }
        let mut conn = self.redis.clone();
        let now = self.clock.now().to_score();
        match recovery::recover(&mut conn, &self.identity, false, now, self.grace).await {
            Ok(r) => self.metrics.recovered(r.total()),
            Err(e) => tracing::warn!(error = %e, "orphan recovery failed; will retry"),
        }
        match self.processor.bury_poisoned().await {
            Ok(0) => {}
            Ok(n) => tracing::error!(jobs = n, "poison pills moved to the dead set"),
            Err(e) => tracing::warn!(error = %e, "could not bury poison pills yet"),
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
            match progress::reconcile(&mut conn, &self.identity, self.interval, &mut suspects).await
            {
                Ok(r) => {
                    if !r.lost.is_empty() {
                        tracing::info!(jobs = r.lost.len(), jids = ?r.lost, "retrying jobs removed outside the worker (Web UI Kill/Delete) now count as failed");
                    }
                    for (send, n) in &r.cancelled {
                        tracing::info!(
                            send,
                            jobs = n,
                            "queued jobs deleted before they ran now count as cancelled"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "progress reconciliation failed; will retry"),
            }
        }
    }
}
