//! Moving due jobs from `retry` and `schedule` to their queues (Sidekiq's `scheduled.rb`).
//!
//! Like Sidekiq it pops due members with a Lua script until none are left. Unlike Ruby, the
//! pop lands in a private staging list first and leaves it in the same MULTI that pushes the
//! job, so a crash between the two loses nothing ([`super::recovery`] puts staged members
//! back into their set).

use crate::clock::Clock;
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::{Job, keys};
use std::sync::LazyLock;

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

/// Enqueues every member of `set` due by `clock`, through the staging list `staging`.
/// Returns how many were moved.
///
/// # Errors
/// Redis errors (staged members stay in the staging list and are recovered).
pub async fn enqueue_due<C: ConnectionLike + Send>(
    conn: &mut C,
    set: &str,
    staging: &str,
    clock: &Clock,
) -> redis::RedisResult<usize> {
    let mut moved = 0;
    loop {
        let now = clock.now();
        let due: Vec<String> = STAGE
            .key(set)
            .key(staging)
            .arg(now.to_score())
            .arg(BATCH)
            .invoke_async(conn)
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
                    job.clear_at();
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
            pipe.lrem(staging, 1, raw).ignore();
        }
        pipe.query_async::<()>(conn).await?;
        moved += due.len();
        if due.len() < BATCH {
            return Ok(moved);
        }
    }
}
