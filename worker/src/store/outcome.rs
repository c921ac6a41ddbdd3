//! Recording what became of a leased job, atomically with releasing the lease.
//!
//! One Lua script removes the job from the in-progress list and, only if it was still there,
//! writes the result: nothing (finished), `ZADD retry`, `ZADD dead` with Sidekiq's trimming,
//! or `RPUSH` back to its queue (stopping). In the same step it moves the jid's delivery state
//! and the bulk send's progress counters, so counts stay exact when a job runs twice.

use super::fetch::Lease;
use crate::decision::Decision;
use mail_protocol::progress::{PROGRESS_TTL_SECS, TRANSITION_LUA};
use mail_protocol::{SendId, keys as mailkeys};
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::keys;
use std::sync::LazyLock;

/// KEYS: in-progress list, target sorted set, jid state, progress hash, queue list,
/// retrying set of the bulk send, index of bulk sends with retrying jobs.
/// ARGV: fetched payload, action, new payload, score, new state ('' = none), state TTL,
/// dead cutoff score, track progress ('1'/'0'), jid, send id.
///
/// Without the lease (another process recovered the job while this one was paused or cut
/// off) only a delivery is still recorded: the mail went out, so the recovered copy must
/// find the jid `sent` and skip, instead of mailing it again.
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{TRANSITION_LUA}{COMPLETE_LUA}")));

const COMPLETE_LUA: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  if ARGV[5] == 'sent' then
    transition(KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[9], ARGV[10], ARGV[5], ARGV[6], ARGV[8], '', '')
  end
  return 0
end
local action = ARGV[2]
if action == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
elseif action == 'dead' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -10000)
elseif action == 'requeue' then
  redis.call('RPUSH', KEYS[5], ARGV[1])
end
if ARGV[5] ~= '' then
  transition(KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[9], ARGV[10], ARGV[5], ARGV[6], ARGV[8], '', ARGV[3])
end
return 1
";

/// Whose delivery state and progress a `MailSenderJob`'s outcome moves.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    /// The job id.
    pub jid: String,
    /// The bulk send it counts toward, if any.
    pub send: Option<SendId>,
}

/// Records `decision` for `lease` at time `now` (float seconds; the dead set's score).
/// Returns `false` when the lease was already gone (another process recovered the job;
/// only a delivery was recorded).
///
/// # Errors
/// Redis errors; the caller retries (the script is idempotent: a second run finds no lease).
pub async fn record<C: ConnectionLike + Send>(
    conn: &mut C,
    lease: &Lease,
    decision: &Decision,
    tracking: Option<&Tracking>,
    now: f64,
) -> redis::RedisResult<bool> {
    let (action, target, payload, score) = match decision {
        Decision::Retry { at, payload } => ("retry", keys::RETRY, payload.as_str(), at.to_score()),
        Decision::Dead { payload } => ("dead", keys::DEAD, payload.as_str(), now),
        Decision::Requeue => ("requeue", keys::RETRY, "", 0.0),
        Decision::Delivered | Decision::AlreadyDelivered | Decision::Done | Decision::Discarded => {
            ("ack", keys::RETRY, "", 0.0)
        }
    };
    let state = decision.delivery_state().filter(|_| tracking.is_some());
    let (state_key, jid) = match tracking {
        Some(t) => (mailkeys::delivery(&t.jid), t.jid.as_str()),
        None => ("mailworker:jid:none".to_owned(), ""),
    };
    let send = tracking.and_then(|t| t.send.as_ref());
    let (progress_key, retrying_key) = match send {
        Some(s) => (mailkeys::progress(s), mailkeys::retrying(s)),
        None => (
            "mailworker:progress:none".to_owned(),
            "mailworker:retrying:none".to_owned(),
        ),
    };
    let done: i64 = COMPLETE
        .key(&lease.list)
        .key(target)
        .key(&state_key)
        .key(&progress_key)
        .key(keys::queue(&lease.queue))
        .key(&retrying_key)
        .key(mailkeys::RETRYING_INDEX)
        .arg(&lease.payload)
        .arg(action)
        .arg(payload)
        .arg(score)
        .arg(state.map_or("", |s| s.as_str()))
        .arg(PROGRESS_TTL_SECS)
        .arg(now - keys::DEAD_TIMEOUT_SECS)
        .arg(if send.is_some() { "1" } else { "0" })
        .arg(jid)
        .arg(send.map_or("", SendId::as_str))
        .invoke_async(conn)
        .await?;
    Ok(done == 1)
}
