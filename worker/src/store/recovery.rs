//! Giving back the private lists of processes that are gone.
//!
//! Every process keeps a registry entry ([`mail_protocol::keys::REGISTRY`]) for each of its
//! in-progress and staging lists. A list whose owner's Sidekiq heartbeat has expired (60 s)
//! is moved back where its jobs came from: queue jobs to their queue, staged members to their
//! sorted set. A process gives back its own lists once at exit.

use crate::queues::QueueSet;
use mail_protocol::keys as mailkeys;
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::keys;
use std::sync::LazyLock;

/// Moves every list of a dead process back where its jobs came from.
/// KEYS: owner heartbeat hash, the list, destination (queue list or sorted set), registry,
/// `queues`, recovery counts, `dead`.
/// ARGV: registry field, kind (`queue` or `set`), queue name, now score,
/// `check` (only if the owner's heartbeat is gone) or `force` (our own lists at exit),
/// poison-pill limit, dead-set cutoff score.
///
/// A job recovered from crashed processes more than the limit allows is probably what
/// crashes them (Sidekiq Pro's "poison pill"): it goes to the dead set instead of taking
/// down the next process too. A graceful exit (`force`) does not count.
static RECOVER: LazyLock<Script> = LazyLock::new(|| Script::new(RECOVER_LUA));

const RECOVER_LUA: &str = r"
if ARGV[5] == 'check' and redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local n, poisoned = 0, 0
local item = redis.call('RPOP', KEYS[2])
while item do
  if ARGV[2] == 'queue' then
    local crashes = 0
    if ARGV[5] == 'check' then
      local ok, job = pcall(cjson.decode, item)
      if ok and type(job) == 'table' and type(job['jid']) == 'string' then
        crashes = redis.call('HINCRBY', KEYS[6], job['jid'], 1)
        redis.call('EXPIRE', KEYS[6], 86400)
      end
    end
    if crashes > tonumber(ARGV[6]) then
      redis.call('ZADD', KEYS[7], ARGV[4], item)
      redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[7])
      redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -10000)
      poisoned = poisoned + 1
    else
      redis.call('RPUSH', KEYS[3], item)
      redis.call('SADD', KEYS[5], ARGV[3])
      n = n + 1
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[4], item)
    n = n + 1
  end
  item = redis.call('RPOP', KEYS[2])
end
redis.call('HDEL', KEYS[4], ARGV[1])
return {n, poisoned}
";

/// Recoveries after which a job is sent to the dead set as a poison pill.
pub const POISON_PILL_LIMIT: u32 = 3;

/// Recovers the in-progress and staging lists of processes whose heartbeat expired
/// (`force` = also ours, used once at exit). Returns the number of jobs moved back.
///
/// # Errors
/// Redis errors.
pub async fn recover<C: ConnectionLike + Send>(
    conn: &mut C,
    own_identity: &str,
    force_own: bool,
    now_score: f64,
) -> redis::RedisResult<u64> {
    let entries: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(mailkeys::REGISTRY)
        .query_async(conn)
        .await?;
    let mut moved = 0u64;
    for (list, meta) in entries {
        let Ok(meta) = serde_json::from_str::<serde_json::Value>(&meta) else {
            tracing::warn!(%list, "unreadable registry entry; left alone");
            continue;
        };
        let Some(owner) = meta["identity"].as_str() else {
            continue;
        };
        let own = owner == own_identity;
        if own && !force_own {
            continue;
        }
        let mode = if own { "force" } else { "check" };
        let (kind, dest, queue) = if let Some(q) = meta["queue"].as_str() {
            ("queue", keys::queue(q), q.to_owned())
        } else if let Some(set) = meta["set"]
            .as_str()
            .filter(|s| *s == keys::RETRY || *s == keys::SCHEDULE)
        {
            ("set", set.to_owned(), String::new())
        } else {
            continue;
        };
        let (n, poisoned): (i64, i64) = RECOVER
            .key(owner)
            .key(&list)
            .key(&dest)
            .key(mailkeys::REGISTRY)
            .key(keys::QUEUES)
            .key(mailkeys::RECOVERIES)
            .key(keys::DEAD)
            .arg(&list)
            .arg(kind)
            .arg(&queue)
            .arg(now_score)
            .arg(mode)
            .arg(POISON_PILL_LIMIT)
            .arg(now_score - keys::DEAD_TIMEOUT_SECS)
            .invoke_async(conn)
            .await?;
        if n > 0 && !own {
            tracing::warn!(owner, %list, jobs = n, "recovered jobs of a process that is gone");
        }
        if poisoned > 0 {
            tracing::error!(owner, %list, jobs = poisoned, limit = POISON_PILL_LIMIT, "jobs recovered from crashed processes too often moved to the dead set (poison pill)");
        }
        moved += n.max(0) as u64;
    }
    Ok(moved)
}

/// The registry entries of process `identity`: its in-progress list per queue and its
/// scheduler staging list per sorted set (field = list key, value = owner and origin).
pub fn registry_entries(identity: &str, queues: &QueueSet) -> Vec<(String, String)> {
    let lists = queues.all().iter().map(|q| {
        (
            q.inprogress.clone(),
            mailkeys::registry_entry_for_queue(identity, &q.name),
        )
    });
    let sets = [keys::RETRY, keys::SCHEDULE].into_iter().map(|set| {
        (
            mailkeys::staging(identity, set),
            mailkeys::registry_entry_for_set(identity, set),
        )
    });
    lists.chain(sets).collect()
}
