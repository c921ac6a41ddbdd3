//! Progress of a bulk send, counted exactly by the worker and read by the web.
//!
//! Each jid has a delivery state ([`DeliveryState`]) under [`keys::delivery`], and each bulk
//! send has counters `sent` / `failed` / `retrying` / `cancelled` under [`keys::progress`].
//! The first three change only through [`TRANSITION_LUA`]'s `transition()`, which moves one
//! unit between counters in the same script that changes the state, so re-executing a job
//! never counts it twice. `sent` is final: a jid already delivered is not mailed again
//! ([`already_sent`]). `failed` counts jobs that died; a dead job retried from the Web UI that
//! then succeeds moves to `sent`. `cancelled` counts queued jobs that were deleted (from the
//! Web UI) before they ran: the worker's reconciliation finds them once nothing of the send
//! is left anywhere; one that turns up after all moves back out of `cancelled` when it ends.
//!
//! A send is registered with its total once the web has enqueued it ([`register_send`]), so
//! the worker knows what "everything" is: `sent + failed + cancelled = total` when it is over.
//! Every move through `transition()` also stamps `last_change_ms` with the Redis server's
//! clock, so a finished send knows when its last job ended ([`read_progress_and_last_change`]).

use crate::job::SendId;
use crate::keys;

/// How long progress and per-jid state are kept (7 days).
pub const PROGRESS_TTL_SECS: i64 = 7 * 24 * 60 * 60;

/// The value a retrying jid has in its send's retrying hash once a poller moved it from the
/// retry set back to its queue: it is waiting to run, not lost.
pub const REQUEUED: &str = "queued";

/// The Lua `transition(state_key, progress_key, retrying_key, index_key, jid, send_id, new,
/// ttl, track, only_from, member)` shared by every script that changes a jid's state.
/// `member` is the retry-set member a `retrying` jid was stored as: the send's retrying hash
/// keeps it (jid ⇒ member), so checking that the job is still there costs one `ZSCORE`.
pub const TRANSITION_LUA: &str = r"
local function transition(state_key, progress_key, retrying_key, index_key, jid, send_id, new, ttl, track, only_from, member)
  local old = redis.call('GET', state_key)
  if old == 'sent' or old == new then return 0 end
  if only_from ~= '' and old ~= only_from then return 0 end
  redis.call('SET', state_key, new, 'EX', ttl)
  if track == '1' then
    local counter = {sent = 'sent', retrying = 'retrying', dead = 'failed'}
    if old and counter[old] then
      redis.call('HINCRBY', progress_key, counter[old], -1)
    elseif tonumber(redis.call('HGET', progress_key, 'cancelled') or '0') > 0 then
      -- Counted as cancelled (deleted while queued), yet here it is: count it where it ended.
      redis.call('HINCRBY', progress_key, 'cancelled', -1)
    end
    redis.call('HINCRBY', progress_key, counter[new], 1)
    local now = redis.call('TIME')
    redis.call('HSET', progress_key, 'last_change_ms', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
    redis.call('EXPIRE', progress_key, ttl)
    if new == 'retrying' then
      redis.call('HSET', retrying_key, jid, member)
      redis.call('EXPIRE', retrying_key, ttl)
      redis.call('SADD', index_key, send_id)
    else
      redis.call('HDEL', retrying_key, jid)
    end
  end
  return 1
end
";

/// The delivery state of a jid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// The SMTP server accepted the message (final).
    Sent,
    /// Waiting in the retry set.
    Retrying,
    /// In the dead set (or discarded).
    Dead,
}

impl DeliveryState {
    /// The value stored under [`keys::delivery`].
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Dead => "dead",
        }
    }
}

/// The counters of one bulk send as the worker left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages the SMTP server accepted.
    pub sent: i64,
    /// Jobs that died (retries exhausted or unrecoverable).
    pub failed: i64,
    /// Jobs waiting in the retry set right now.
    pub retrying: i64,
    /// Queued jobs deleted before they ran (a queue deleted from the Web UI, say).
    pub cancelled: i64,
}

impl Progress {
    /// Jobs that have ended one way or another.
    pub fn ended(&self) -> i64 {
        self.sent + self.failed + self.cancelled
    }
}

/// Reads the progress of several bulk sends in one round trip (missing ones read as zero).
///
/// # Errors
/// Redis errors.
pub async fn read_progress<C>(
    conn: &mut C,
    sends: &[SendId],
) -> Result<Vec<Progress>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let rows = read_progress_and_last_change(conn, sends).await?;
    Ok(rows.into_iter().map(|(p, _)| p).collect())
}

/// [`read_progress`] plus when each send's counters last moved, in epoch milliseconds of the
/// Redis server's clock (`last_change_ms`, written by `transition()`; `None` before its first
/// job was done), in one round trip. For a finished send this is when its last job ended,
/// which the web's A/B results measure to.
///
/// # Errors
/// Redis errors.
pub async fn read_progress_and_last_change<C>(
    conn: &mut C,
    sends: &[SendId],
) -> Result<Vec<(Progress, Option<i64>)>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    if sends.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for send in sends {
        pipe.cmd("HMGET").arg(keys::progress(send)).arg(&[
            "sent",
            "failed",
            "retrying",
            "cancelled",
            "last_change_ms",
        ]);
    }
    let rows: Vec<[Option<i64>; 5]> = pipe.query_async(conn).await?;
    Ok(rows
        .into_iter()
        .map(|[s, f, r, c, changed]| {
            let progress = Progress {
                sent: s.unwrap_or(0),
                failed: f.unwrap_or(0),
                retrying: r.unwrap_or(0).max(0),
                cancelled: c.unwrap_or(0).max(0),
            };
            (progress, changed)
        })
        .collect())
}

/// Records that `send` is fully enqueued with `total` jobs on `queue`, so the worker can tell
/// when jobs of it were deleted before they ran. Call it once the enqueue is over (with the
/// number really enqueued).
///
/// # Errors
/// Redis errors.
pub async fn register_send<C>(
    conn: &mut C,
    send: &SendId,
    total: usize,
    queue: &str,
) -> Result<(), redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let key = keys::send(send);
    redis::pipe()
        .atomic()
        .hset_multiple(
            &key,
            &[("total", total.to_string()), ("queue", queue.to_owned())],
        )
        .ignore()
        .expire(&key, PROGRESS_TTL_SECS)
        .ignore()
        .sadd(keys::SENDS, send.as_str())
        .ignore()
        .query_async(conn)
        .await
}

/// Whether this jid was already delivered: a job executed twice (recovered after a crash,
/// or revived from the Web UI) must not mail twice.
///
/// # Errors
/// Redis errors.
pub async fn already_sent<C>(conn: &mut C, jid: &str) -> redis::RedisResult<bool>
where
    C: redis::aio::ConnectionLike + Send,
{
    let state: Option<String> = redis::cmd("GET")
        .arg(keys::delivery(jid))
        .query_async(conn)
        .await?;
    Ok(state.as_deref() == Some(DeliveryState::Sent.as_str()))
}
