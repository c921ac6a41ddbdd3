//! Keeping each bulk send's progress exact, including what happens behind the worker's back.
//!
//! Counters move only through [`TRANSITION_LUA`]'s `transition()`: a jid's state (`sent`,
//! `retrying`, `dead`) changes at most once per step and moves one unit between the counters
//! `sent`, `retrying` and `failed`; `sent` is final. The worker calls it when it records an
//! outcome. But the Web UI can also Kill or Delete a job from the Retries page without the
//! worker ever seeing it again, which would leave it counted as `retrying` forever. So every
//! `RECOVERY_INTERVAL` [`reconcile`] looks for retrying jids that are nowhere a job can be
//! (retry and schedule sets, queues, in-progress and staging lists) in two passes in a row,
//! and counts them as failed. A misjudged job heals itself: when it runs again, its state
//! moves on from `dead` like any other.

use crate::fetch;
use mail_protocol::SendId;
use mail_protocol::keys::{
    delivery as delivery_key, progress as progress_key, retrying as retrying_key,
};
use mail_protocol::progress::PROGRESS_TTL_SECS;
use redis::Script;
use sidekiq_wire::{Job, keys};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// SET of mail_job ids that have jids in state `retrying`.
pub const RETRYING_INDEX: &str = "mailworker:retrying";

/// The Lua `transition(state_key, progress_key, retrying_key, index_key, jid, mail_job_id,
/// new, ttl, track, only_from)` shared by every script that changes a jid's state.
pub const TRANSITION_LUA: &str = r"
local function transition(state_key, progress_key, retrying_key, index_key, jid, mail_job_id, new, ttl, track, only_from)
  local old = redis.call('GET', state_key)
  if old == 'sent' or old == new then return 0 end
  if only_from ~= '' and old ~= only_from then return 0 end
  redis.call('SET', state_key, new, 'EX', ttl)
  if track == '1' then
    local counter = {sent = 'sent', retrying = 'retrying', dead = 'failed'}
    if old and counter[old] then redis.call('HINCRBY', progress_key, counter[old], -1) end
    redis.call('HINCRBY', progress_key, counter[new], 1)
    redis.call('EXPIRE', progress_key, ttl)
    if new == 'retrying' then
      redis.call('SADD', retrying_key, jid)
      redis.call('EXPIRE', retrying_key, ttl)
      redis.call('SADD', index_key, mail_job_id)
    else
      redis.call('SREM', retrying_key, jid)
    end
  end
  return 1
end
";

/// KEYS: jid state, progress hash, retrying set, index. ARGV: jid, mail_job_id, TTL.
static MARK_LOST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_LUA}return transition(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], 'dead', ARGV[3], '1', 'retrying')"
    ))
});

/// The keys of one bulk send's progress.
pub struct Keys {
    /// HASH `sent` / `failed` / `retrying`.
    pub progress: String,
    /// SET of its jids in state `retrying`.
    pub retrying: String,
}

impl Keys {
    /// Keys for `mail_job_id` (placeholders when the job belongs to no bulk send).
    pub fn for_send(send: Option<&SendId>) -> Self {
        match send {
            Some(id) => Keys {
                progress: progress_key(id),
                retrying: retrying_key(id),
            },
            None => Keys {
                progress: "mailworker:progress:none".into(),
                retrying: "mailworker:retrying:none".into(),
            },
        }
    }
}

/// Retrying jids that were nowhere in the previous pass (the second strike counts).
#[derive(Debug, Default)]
pub struct Suspects(HashSet<String>);

/// One reconciliation pass. Returns the jids counted as failed.
///
/// # Errors
/// Redis errors.
pub async fn reconcile<C>(conn: &mut C, suspects: &mut Suspects) -> redis::RedisResult<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(RETRYING_INDEX)
        .query_async(conn)
        .await?;
    let mut retrying: HashMap<String, SendId> = HashMap::new();
    for id in ids.into_iter().map(SendId::from_stored) {
        let jids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(retrying_key(&id))
            .query_async(conn)
            .await?;
        if jids.is_empty() {
            redis::cmd("SREM")
                .arg(RETRYING_INDEX)
                .arg(id.as_str())
                .query_async::<()>(conn)
                .await?;
        }
        retrying.extend(jids.into_iter().map(|j| (j, id.clone())));
    }
    if retrying.is_empty() {
        suspects.0.clear();
        return Ok(Vec::new());
    }
    for payload in payloads_anywhere(conn).await? {
        if let Ok(job) = Job::parse(&payload) {
            retrying.remove(job.jid());
        }
    }
    let mut lost = Vec::new();
    let mut next = HashSet::new();
    for (jid, id) in retrying {
        if !suspects.0.contains(&jid) {
            next.insert(jid);
            continue;
        }
        let changed: i64 = MARK_LOST
            .key(delivery_key(&jid))
            .key(progress_key(&id))
            .key(retrying_key(&id))
            .key(RETRYING_INDEX)
            .arg(&jid)
            .arg(id.as_str())
            .arg(PROGRESS_TTL_SECS)
            .invoke_async(conn)
            .await?;
        if changed == 1 {
            lost.push(jid);
        }
    }
    suspects.0 = next;
    Ok(lost)
}

/// Every payload in the places a live job can be.
async fn payloads_anywhere<C>(conn: &mut C) -> redis::RedisResult<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut out: Vec<String> = Vec::new();
    for set in [keys::RETRY, keys::SCHEDULE] {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(set)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        out.extend(members);
    }
    let queues: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::QUEUES)
        .query_async(conn)
        .await?;
    let mut lists: Vec<String> = queues.iter().map(|q| keys::queue(q)).collect();
    let registry: Vec<String> = redis::cmd("HKEYS")
        .arg(fetch::REGISTRY)
        .query_async(conn)
        .await?;
    lists.extend(registry);
    for list in lists {
        let items: Vec<String> = redis::cmd("LRANGE")
            .arg(&list)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        out.extend(items);
    }
    Ok(out)
}
