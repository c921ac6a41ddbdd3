//! Recording what happened to a leased job, atomically with releasing the lease.
//!
//! One Lua script removes the job from the in-progress list and, only if it was still
//! there, writes the result: nothing (delivered), `ZADD retry`, `ZADD dead` with Sidekiq's
//! trimming, or `RPUSH` back to its queue (shutdown). In the same step it moves the jid's
//! delivery state and the bulk send's progress counters, so counts stay exact when a job
//! runs twice.

use crate::fetch::Lease;
use crate::progress;
use mail_protocol::SendId;
use mail_protocol::keys::delivery as delivery_key;
use mail_protocol::progress::PROGRESS_TTL_SECS;
use redis::Script;
use sidekiq_wire::keys;
use std::sync::LazyLock;

/// KEYS: in-progress list, target sorted set, jid state, progress hash, queue list,
/// retrying set of the bulk send, index of bulk sends with retrying jobs.
/// ARGV: fetched payload, action, new payload, score, new state ('' = none), state TTL,
/// dead cutoff score, track progress ('1'/'0'), jid, mail_job_id.
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{}{COMPLETE_LUA}", progress::TRANSITION_LUA)));

const COMPLETE_LUA: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
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
  transition(KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[9], ARGV[10], ARGV[5], ARGV[6], ARGV[8], '')
end
return 1
";

/// What to do with the lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Finished: just release it.
    Ack,
    /// Store `payload` in the retry set at `score`.
    Retry {
        /// Retry payload.
        payload: String,
        /// Next run, float seconds.
        score: f64,
    },
    /// Store `payload` in the dead set at `score` (now), trimming like Sidekiq.
    Dead {
        /// Dead payload (or the raw string of a malformed job).
        payload: String,
        /// Time of death, float seconds.
        score: f64,
    },
    /// Push the untouched payload back to the right end of its queue (fetched next).
    Requeue,
}

/// The delivery state of a jid after this outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// The SMTP server accepted the message.
    Sent,
    /// Waiting in the retry set.
    Retrying,
    /// In the dead set (or discarded).
    Dead,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Dead => "dead",
        }
    }
}

/// Who the progress belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    /// The job id.
    pub jid: String,
    /// The bulk send it belongs to, if any.
    pub send: Option<SendId>,
    /// Its new state.
    pub state: DeliveryState,
}

/// Records an outcome. Returns `false` when the lease was already gone (another process
/// recovered the job; nothing was written).
///
/// # Errors
/// Redis errors; the caller retries (the script is idempotent: a second run finds no lease).
pub async fn record<C>(
    conn: &mut C,
    lease: &Lease,
    action: &Action,
    tracking: Option<&Tracking>,
    now: f64,
) -> redis::RedisResult<bool>
where
    C: redis::aio::ConnectionLike + Send,
{
    let (name, target, payload, score) = match action {
        Action::Ack => ("ack", keys::RETRY, "", 0.0),
        Action::Retry { payload, score } => ("retry", keys::RETRY, payload.as_str(), *score),
        Action::Dead { payload, score } => ("dead", keys::DEAD, payload.as_str(), *score),
        Action::Requeue => ("requeue", keys::RETRY, "", 0.0),
    };
    let (state_key, state, jid, id) = match tracking {
        Some(t) => (
            delivery_key(&t.jid),
            t.state.as_str(),
            t.jid.as_str(),
            t.send.as_ref(),
        ),
        None => ("mailworker:jid:none".into(), "", "", None),
    };
    let pk = progress::Keys::for_send(id);
    let done: i64 = COMPLETE
        .key(&lease.list)
        .key(target)
        .key(&state_key)
        .key(&pk.progress)
        .key(keys::queue(&lease.queue))
        .key(&pk.retrying)
        .key(progress::RETRYING_INDEX)
        .arg(&lease.payload)
        .arg(name)
        .arg(payload)
        .arg(score)
        .arg(state)
        .arg(PROGRESS_TTL_SECS)
        .arg(now - keys::DEAD_TIMEOUT_SECS)
        .arg(if id.is_some() { "1" } else { "0" })
        .arg(jid)
        .arg(id.map(SendId::as_str).unwrap_or_default())
        .invoke_async(conn)
        .await?;
    Ok(done == 1)
}

/// Whether this jid was already delivered (a re-executed job must not mail twice).
///
/// # Errors
/// Redis errors.
pub async fn already_sent<C>(conn: &mut C, jid: &str) -> redis::RedisResult<bool>
where
    C: redis::aio::ConnectionLike + Send,
{
    let state: Option<String> = redis::cmd("GET")
        .arg(delivery_key(jid))
        .query_async(conn)
        .await?;
    Ok(state.as_deref() == Some("sent"))
}
