//! The scheduled-job poller: moves due jobs from `retry` and `schedule` to their queues.
//!
//! Like Sidekiq it pops due members with a Lua script until none are left, and sleeps a
//! random interval scaled by the number of live processes, so many processes poll about as
//! often as one. Unlike Ruby, the pop lands in a private staging list first and leaves it in
//! the same MULTI that pushes the job, so a crash between the two loses nothing (the
//! recovery puts staged members back into their set).

use crate::fetch::staging_key;
use crate::runner::Shared;
use rand::Rng;
use redis::Script;
use sidekiq_wire::{Job, keys};
use std::sync::LazyLock;
use std::time::Duration;

/// Members moved per round trip.
const BATCH: usize = 100;

/// KEYS: sorted set, staging list. ARGV: now, limit.
static STAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('LPUSH', KEYS[2], member)
end
return due
",
    )
});

/// Enqueues every due member of `set`. Returns how many were moved.
///
/// # Errors
/// Redis errors (staged members stay in the staging list and are recovered).
pub async fn enqueue_due(shared: &Shared, set: &str) -> redis::RedisResult<usize> {
    let mut conn = shared.redis.clone();
    let staging = staging_key(&shared.identity, set);
    let mut moved = 0;
    loop {
        let now = shared.clock.now();
        let due: Vec<String> = STAGE
            .key(set)
            .key(&staging)
            .arg(now.to_score())
            .arg(BATCH)
            .invoke_async(&mut conn)
            .await?;
        if due.is_empty() {
            return Ok(moved);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for raw in &due {
            match Job::parse(raw) {
                Ok(mut job) => {
                    let queue = job
                        .queue()
                        .filter(|q| sidekiq_wire::client::valid_queue_name(q))
                        .unwrap_or("default")
                        .to_owned();
                    job.set_queue(queue.clone());
                    job.remove("at");
                    job.set_enqueued_at(now);
                    pipe.sadd(keys::QUEUES, &queue).ignore();
                    pipe.lpush(keys::queue(&queue), job.to_json_string())
                        .ignore();
                }
                Err(e) => {
                    // It cannot be enqueued; keep it where a person can see it.
                    tracing::error!(set, error = %e, "unparseable member moved to the dead set");
                    pipe.zadd(keys::DEAD, raw, now.to_score()).ignore();
                }
            }
            pipe.lrem(&staging, 1, raw).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        moved += due.len();
        if due.len() < BATCH {
            return Ok(moved);
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

/// The poll loop; returns when the process is quieted.
pub async fn run(shared: std::sync::Arc<Shared>) {
    let mut conn = shared.redis.clone();
    let first = {
        let cap = shared
            .settings
            .poll_interval
            .map_or(5.0, |d| d.as_secs_f64().min(5.0));
        Duration::from_secs_f64(rand::rng().random_range(0.0..=cap))
    };
    if shared.sleep_unless_quiet(first).await {
        return;
    }
    loop {
        for set in [keys::RETRY, keys::SCHEDULE] {
            match enqueue_due(&shared, set).await {
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
        let average = shared
            .settings
            .poll_interval
            .unwrap_or_else(|| Duration::from_secs(5 * processes.max(1)));
        let jitter: f64 = rand::rng().random();
        if shared
            .sleep_unless_quiet(poll_sleep(average, processes, jitter))
            .await
        {
            return;
        }
    }
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
