//! The scheduled-job poller (Sidekiq's `scheduled.rb`): enqueues due jobs from `retry` and
//! `schedule`, sleeping a random interval scaled by the number of live processes, so many
//! processes poll about as often as one.

use crate::clock::Clock;
use crate::control::Control;
use crate::store::schedule;
use mail_protocol::keys as mailkeys;
use rand::Rng;
use service_runtime::redis_link::RedisLink;
use sidekiq_wire::keys;
use std::time::Duration;

/// What the poller uses.
pub struct Poller {
    /// Shared Redis connection.
    pub redis: RedisLink,
    /// This process's identity (names its staging lists).
    pub identity: String,
    /// `SCHEDULED_POLL_INTERVAL`, or `None` for 5 s × live processes.
    pub interval: Option<Duration>,
    /// Stops polling when quiet.
    pub control: Control,
    /// The worker's clock.
    pub clock: Clock,
}

impl Poller {
    /// Polls until the process is quiet.
    pub async fn run(self) {
        let mut conn = self.redis.clone();
        let first = {
            let cap = self.interval.map_or(5.0, |d| d.as_secs_f64().min(5.0));
            Duration::from_secs_f64(rand::rng().random_range(0.0..=cap))
        };
        if self.control.sleep_unless_quiet(first).await {
            return;
        }
        loop {
            for set in [keys::RETRY, keys::SCHEDULE] {
                let staging = mailkeys::staging(&self.identity, set);
                match schedule::enqueue_due(&mut conn, set, &staging, &self.clock).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(set, jobs = n, "enqueued due jobs"),
                    Err(e) => tracing::warn!(set, error = %e, "scheduler poll failed; will retry"),
                }
            }
            let processes: u64 = redis::cmd("SCARD")
                .arg(keys::PROCESSES)
                .query_async(&mut conn)
                .await
                .unwrap_or(1);
            let average = self
                .interval
                .unwrap_or_else(|| Duration::from_secs(5 * processes.max(1)));
            let jitter: f64 = rand::rng().random();
            if self
                .control
                .sleep_unless_quiet(poll_sleep(average, processes, jitter))
                .await
            {
                return;
            }
        }
    }
}

/// How long to sleep before the next poll (Sidekiq's `random_poll_interval`).
pub fn poll_sleep(average: Duration, processes: u64, jitter: f64) -> Duration {
    let avg = average.as_secs_f64();
    let secs = if processes < 10 {
        avg * 0.5 + avg * jitter
    } else {
        2.0 * avg * jitter
    };
    Duration::from_secs_f64(secs.max(0.05))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_like_sidekiq() {
        let avg = Duration::from_secs(10);
        assert_eq!(poll_sleep(avg, 1, 0.0), Duration::from_secs(5));
        assert_eq!(poll_sleep(avg, 9, 1.0), Duration::from_secs(15));
        assert_eq!(poll_sleep(avg, 10, 0.5), Duration::from_secs(10));
        assert_eq!(poll_sleep(avg, 10, 0.0), Duration::from_millis(50));
    }
}
