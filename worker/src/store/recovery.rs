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
/// `queues`, recovery counts, poisoned list, `schedule`.
/// ARGV: registry field, kind (`queue` or `set`), queue name, now score,
/// `check` (only if the owner's heartbeat is gone) or `force` (our own lists at exit),
/// poison-pill limit, grace in seconds.
///
/// A job recovered from crashed processes more than the limit allows is probably what
/// crashes them (Sidekiq Pro's "poison pill"): it goes to the poisoned list, from where
/// [`crate::processor::Processor::bury_poisoned`] moves it to the dead set, instead of
/// taking down the next process too. A graceful exit (`force`) does not count.
///
/// The jobs of a process that is gone run again after the grace (through `schedule`), not
/// at once: a process that was only paused (a VM pause, a long GC, a partition) gets that
/// long to finish them and record that they were delivered, so the copies are skipped
/// instead of mailed twice. Our own lists at exit hold jobs nobody runs: straight back.
static RECOVER: LazyLock<Script> = LazyLock::new(|| Script::new(RECOVER_LUA));

const RECOVER_LUA: &str = r"
if ARGV[5] == 'check' and redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0, 0} end
local requeued, deferred, poisoned = 0, 0, 0
local grace = tonumber(ARGV[7])
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
      redis.call('LPUSH', KEYS[7], item)
      poisoned = poisoned + 1
    elseif ARGV[5] == 'check' and grace > 0 then
      redis.call('ZADD', KEYS[8], tonumber(ARGV[4]) + grace, item)
      deferred = deferred + 1
    else
      redis.call('RPUSH', KEYS[3], item)
      redis.call('SADD', KEYS[5], ARGV[3])
      requeued = requeued + 1
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[4], item)
    requeued = requeued + 1
  end
  item = redis.call('RPOP', KEYS[2])
end
redis.call('HDEL', KEYS[4], ARGV[1])
return {requeued, deferred, poisoned}
";

/// What a recovery pass moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs back in their queue or sorted set now.
    pub requeued: u64,
    /// Jobs of processes that are gone, scheduled to run after the grace.
    pub deferred: u64,
    /// Poison pills waiting for the dead set.
    pub poisoned: u64,
}

impl Recovered {
    /// Jobs taken out of other processes' lists, whatever became of them.
    pub fn total(&self) -> u64 {
        self.requeued + self.deferred + self.poisoned
    }
}

/// Recoveries after which a job is sent to the dead set as a poison pill.
pub const POISON_PILL_LIMIT: u32 = 3;

/// Recovers the in-progress and staging lists of processes whose heartbeat expired
/// (`force_own` = also ours, used once at exit); their queue jobs run again after `grace`.
///
/// # Errors
/// Redis errors.
pub async fn recover<C: ConnectionLike + Send>(
    conn: &mut C,
    own_identity: &str,
    force_own: bool,
    now_score: f64,
    grace: std::time::Duration,
) -> redis::RedisResult<Recovered> {
    let entries: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(mailkeys::REGISTRY)
        .query_async(conn)
        .await?;
    let mut moved = Recovered::default();
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
        let (requeued, deferred, poisoned): (i64, i64, i64) = RECOVER
            .key(owner)
            .key(&list)
            .key(&dest)
            .key(mailkeys::REGISTRY)
            .key(keys::QUEUES)
            .key(mailkeys::RECOVERIES)
            .key(mailkeys::POISONED)
            .key(keys::SCHEDULE)
            .arg(&list)
            .arg(kind)
            .arg(&queue)
            .arg(now_score)
            .arg(mode)
            .arg(POISON_PILL_LIMIT)
            .arg(grace.as_secs_f64())
            .invoke_async(conn)
            .await?;
        if requeued + deferred > 0 && !own {
            tracing::warn!(owner, %list, requeued, deferred, grace_secs = grace.as_secs_f64(), "recovered jobs of a process that is gone");
        }
        if poisoned > 0 {
            tracing::error!(owner, %list, jobs = poisoned, limit = POISON_PILL_LIMIT, "jobs recovered from crashed processes too often go to the dead set (poison pill)");
        }
        moved.requeued += requeued.max(0) as u64;
        moved.deferred += deferred.max(0) as u64;
        moved.poisoned += poisoned.max(0) as u64;
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
