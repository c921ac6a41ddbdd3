//! Moving due jobs from `retry` and `schedule` to their queues (Sidekiq's `scheduled.rb`).
//!
//! Like Sidekiq it pops due members with a Lua script until none are left. Unlike Ruby, the
//! pop lands in a private staging list first and leaves it in the same MULTI that pushes the
//! job, so a crash between the two loses nothing ([`super::recovery`] puts staged members
//! back into their set).

use crate::clock::Clock;
use crate::unreadable::{Unreadable, dead_entry_for_bytes, read_job};
use mail_protocol::MailSenderArgs;
use mail_protocol::keys as mailkeys;
use mail_protocol::progress::REQUEUED;
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::{Timestamp, keys};
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
    // Members a previous pass staged but could not push (its reply was lost, Redis went
    // away): they left the set already and are due, so they go first.
    let leftover: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(staging)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let mut moved = 0;
    if !leftover.is_empty() {
        tracing::warn!(
            set,
            jobs = leftover.len(),
            "pushing jobs a failed poll left staged"
        );
        push(conn, set, staging, &leftover, clock.now()).await?;
        moved += leftover.len();
    }
    loop {
        let now = clock.now();
        let due: Vec<Vec<u8>> = STAGE
            .key(set)
            .key(staging)
            .arg(now.to_score())
            .arg(BATCH)
            .invoke_async(conn)
            .await?;
        if due.is_empty() {
            return Ok(moved);
        }
        push(conn, set, staging, &due, now).await?;
        moved += due.len();
        if due.len() < BATCH {
            return Ok(moved);
        }
    }
}

/// Lua: if the jid is in the send's retrying hash, it is back in a queue now.
const MARK_REQUEUED_LUA: &str = "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0";

/// Tells the progress reconciliation that a retrying mail job is waiting in its queue again
/// (so a long backlog in front of it never makes it look lost).
fn mark_requeued(pipe: &mut redis::Pipeline, job: &sidekiq_wire::Job) {
    let Some(send) = MailSenderArgs::from_job(job).ok().and_then(|a| a.send_id()) else {
        return;
    };
    pipe.cmd("EVAL")
        .arg(MARK_REQUEUED_LUA)
        .arg(1)
        .arg(mailkeys::retrying(&send))
        .arg(job.jid())
        .arg(REQUEUED)
        .ignore();
}

/// Pushes staged members to their queues and takes them off the staging list, in one MULTI.
async fn push<C: ConnectionLike + Send>(
    conn: &mut C,
    set: &str,
    staging: &str,
    members: &[Vec<u8>],
    now: Timestamp,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for raw in members {
        match read_job(raw) {
            Ok(mut job) => {
                if set == keys::RETRY {
                    mark_requeued(&mut pipe, &job);
                }
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
            Err(e @ Unreadable::NotAJob(_)) => {
                // It cannot be enqueued; keep it where a person can see it.
                tracing::error!(set, error = %e, "unparseable member moved to the dead set");
                pipe.zadd(keys::DEAD, raw, now.to_score()).ignore();
            }
            Err(e @ Unreadable::NotText(_)) => {
                tracing::error!(set, error = %e, "undecodable member moved to the dead set (kept as base64)");
                let entry = dead_entry_for_bytes(raw, set, now);
                pipe.zadd(keys::DEAD, entry, now.to_score()).ignore();
            }
        }
        pipe.lrem(staging, 1, raw).ignore();
    }
    pipe.query_async::<()>(conn).await
}
