//! Reliable fetch (what Sidekiq Pro calls super_fetch).
//!
//! A fetched job is moved atomically (`LMOVE`) from `queue:<q>` into a private in-progress
//! list of this process, `mailworker:inprogress:<identity>:<q>`, and leaves that list only in
//! the same Lua script that records its outcome (delivered, scheduled for retry, dead, or
//! pushed back). If the process dies, the job is still in Redis: every process periodically
//! looks at the registry of in-progress lists and moves the lists of processes whose Sidekiq
//! heartbeat has expired back to their queues. The private lists are not in `queues`, so the
//! Web UI never shows them.
//!
//! The list entry is the *lease*: completing a job whose entry is gone (because another
//! process already recovered it) writes nothing, so a job is never both requeued and retried.

use rand::Rng;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};
use sidekiq_wire::keys;
use sidekiq_wire::process::QueueMode;
use std::sync::LazyLock;
use std::time::Duration;

/// HASH: in-progress list key ⇒ JSON `{"identity", "queue"}` or `{"identity", "set"}`.
pub const REGISTRY: &str = "mailworker:inprogress";

/// The in-progress list of `identity` for `queue`.
pub fn inprogress_key(identity: &str, queue: &str) -> String {
    format!("mailworker:inprogress:{identity}:{queue}")
}

/// The staging list where the scheduler holds jobs between leaving a sorted set and
/// landing in their queue (so a crash in between loses nothing).
pub fn staging_key(identity: &str, set: &str) -> String {
    format!("mailworker:staging:{identity}:{set}")
}

/// Most jobs taken in one fetch round trip.
pub const MAX_BATCH: usize = 100;

/// A job held in this process's in-progress list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The queue it came from.
    pub queue: String,
    /// The in-progress list holding it.
    pub list: String,
    /// The payload exactly as fetched.
    pub payload: String,
}

/// For each requested slot, try the preferred queue, then the others in configured order.
/// KEYS: (queue key, in-progress key) per queue. ARGV: preferred queue index per slot.
static FETCH: LazyLock<Script> = LazyLock::new(|| Script::new(FETCH_LUA));

const FETCH_LUA: &str = r"
local n = #KEYS / 2
local out = {}
for s = 1, #ARGV do
  local p = tonumber(ARGV[s])
  local job = redis.call('LMOVE', KEYS[2*p-1], KEYS[2*p], 'RIGHT', 'LEFT')
  local from = p
  if not job then
    for i = 1, n do
      if i ~= p then
        job = redis.call('LMOVE', KEYS[2*i-1], KEYS[2*i], 'RIGHT', 'LEFT')
        if job then from = i break end
      end
    end
  end
  if not job then break end
  out[#out+1] = from
  out[#out+1] = job
end
return out
";

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

/// HASH: jid ⇒ how often it was recovered from a crashed process (kept a day).
pub const RECOVERIES: &str = "mailworker:recoveries";

/// Recoveries after which a job is sent to the dead set as a poison pill.
pub const POISON_PILL_LIMIT: u32 = 3;

/// The fetch side: a dedicated connection (blocking commands would stall a shared,
/// multiplexed one) with no response timeout (redis 1.x's 500 ms default would cut
/// every `BLMOVE` short).
pub struct Fetcher {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    queues: Vec<(String, u32)>,
    mode: QueueMode,
    keys: Vec<String>,
    lists: Vec<String>,
    block: Duration,
}

impl Fetcher {
    /// A fetcher for `identity` over `queues` (name, weight).
    ///
    /// # Errors
    /// A malformed Redis URL.
    pub fn new(
        redis_url: &str,
        identity: &str,
        queues: &[(String, u32)],
        mode: QueueMode,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(redis_url)?;
        let mut keys = Vec::new();
        let mut lists = Vec::new();
        for (q, _) in queues {
            keys.push(keys::queue(q));
            lists.push(inprogress_key(identity, q));
        }
        // One queue can block for as long as Sidekiq's BRPOP (2 s). With several, a block
        // watches only one of them, so keep it short to bound the wait of the others.
        let block = if queues.len() == 1 {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(500)
        };
        Ok(Fetcher {
            client,
            conn: None,
            queues: queues.to_vec(),
            mode,
            keys,
            lists,
            block,
        })
    }

    /// The in-progress lists of this fetcher, with their queues.
    pub fn lists(&self) -> impl Iterator<Item = (&str, &str)> {
        self.queues
            .iter()
            .map(|(q, _)| q.as_str())
            .zip(self.lists.iter().map(String::as_str))
    }

    async fn conn(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(None)
                .set_connection_timeout(Some(Duration::from_secs(5)));
            self.conn = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        self.conn
            .as_mut()
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no connection")))
    }

    /// Drops the connection after an error so the next call reconnects.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn pick(&self, rng: &mut impl Rng) -> usize {
        match self.mode {
            QueueMode::Strict => 0,
            QueueMode::Weighted => {
                let total: u32 = self.queues.iter().map(|(_, w)| *w).sum();
                let mut x = rng.random_range(0..total.max(1));
                for (i, (_, w)) in self.queues.iter().enumerate() {
                    if x < *w {
                        return i;
                    }
                    x -= w;
                }
                0
            }
        }
    }

    /// Takes up to `max` jobs without waiting; if there are none, blocks on one queue
    /// (weighted pick, or the first in strict mode) for a short while.
    ///
    /// # Errors
    /// Redis errors (the caller backs off and retries).
    pub async fn fetch(&mut self, max: usize) -> redis::RedisResult<Vec<Lease>> {
        let max = max.clamp(1, MAX_BATCH);
        let prefs: Vec<usize> = {
            let mut rng = rand::rng();
            (0..max).map(|_| self.pick(&mut rng) + 1).collect()
        };
        let mut invocation = FETCH.prepare_invoke();
        for (k, l) in self.keys.iter().zip(&self.lists) {
            invocation.key(k).key(l);
        }
        for p in &prefs {
            invocation.arg(*p);
        }
        let raw: Vec<Value> = {
            let conn = self.conn().await?;
            invocation.invoke_async(conn).await?
        };
        let mut out = Vec::with_capacity(raw.len() / 2);
        for pair in raw.chunks(2) {
            let (Some(idx), Some(payload)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let idx: usize = redis::from_redis_value_ref(idx)?;
            let payload: String = redis::from_redis_value_ref(payload)?;
            if let Some(i) = idx.checked_sub(1).filter(|i| *i < self.queues.len()) {
                out.push(Lease {
                    queue: self.queues[i].0.clone(),
                    list: self.lists[i].clone(),
                    payload,
                });
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let i = prefs.first().map_or(0, |p| p - 1);
        let (key, list, block) = (self.keys[i].clone(), self.lists[i].clone(), self.block);
        let conn = self.conn().await?;
        let got: Option<String> = redis::cmd("BLMOVE")
            .arg(&key)
            .arg(&list)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block.as_secs_f64())
            .query_async(conn)
            .await?;
        Ok(got
            .map(|payload| Lease {
                queue: self.queues[i].0.clone(),
                list,
                payload,
            })
            .into_iter()
            .collect())
    }
}

/// Registry entry of an in-progress list.
pub fn registry_entry_for_queue(identity: &str, queue: &str) -> String {
    serde_json::json!({"identity": identity, "queue": queue}).to_string()
}

/// Registry entry of a scheduler staging list.
pub fn registry_entry_for_set(identity: &str, set: &str) -> String {
    serde_json::json!({"identity": identity, "set": set}).to_string()
}

/// Recovers the in-progress and staging lists of processes whose heartbeat expired
/// (`force` = also ours, used once at exit). Returns the number of jobs moved back.
///
/// # Errors
/// Redis errors.
pub async fn recover<C>(
    conn: &mut C,
    own_identity: &str,
    force_own: bool,
    now_score: f64,
) -> redis::RedisResult<u64>
where
    C: redis::aio::ConnectionLike + Send,
{
    let entries: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(REGISTRY)
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
            .key(REGISTRY)
            .key(keys::QUEUES)
            .key(RECOVERIES)
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
