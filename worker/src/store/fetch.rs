//! Reliable fetch (what Sidekiq Pro calls super_fetch): a job is moved atomically (`LMOVE`)
//! from `queue:<q>` into this process's private in-progress list and leaves it only in the
//! script that records its outcome ([`super::outcome`]). If the process dies, the job is
//! still in Redis, where [`super::recovery`] finds it.
//!
//! The list entry is the *lease*: completing a job whose entry is gone (because another
//! process already recovered it) writes nothing, so a job is never both requeued and retried.

use crate::queues::QueueSet;
use redis::aio::ConnectionLike;
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

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

/// Takes up to `first_choices.len()` jobs without waiting: slot `s` tries queue
/// `first_choices[s]` (an index into `queues`) first, then the others in order.
///
/// # Errors
/// Redis errors.
pub async fn take<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &QueueSet,
    first_choices: &[usize],
) -> redis::RedisResult<Vec<Lease>> {
    let mut invocation = FETCH.prepare_invoke();
    for q in queues.all() {
        invocation.key(&q.key).key(&q.inprogress);
    }
    for p in first_choices {
        invocation.arg(p + 1);
    }
    let raw: Vec<Value> = invocation.invoke_async(conn).await?;
    let mut out = Vec::with_capacity(raw.len() / 2);
    for pair in raw.chunks(2) {
        let (Some(idx), Some(payload)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let idx: usize = redis::from_redis_value_ref(idx)?;
        let payload: String = redis::from_redis_value_ref(payload)?;
        if let Some(q) = idx.checked_sub(1).and_then(|i| queues.get(i)) {
            out.push(Lease {
                queue: q.name.clone(),
                list: q.inprogress.clone(),
                payload,
            });
        }
    }
    Ok(out)
}

/// Waits up to `block` for a job in queue `index` (`BLMOVE`), on a connection of its own.
///
/// # Errors
/// Redis errors.
pub async fn wait_for_one<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &QueueSet,
    index: usize,
    block: Duration,
) -> redis::RedisResult<Option<Lease>> {
    let Some(q) = queues.get(index) else {
        return Ok(None);
    };
    let got: Option<String> = redis::cmd("BLMOVE")
        .arg(&q.key)
        .arg(&q.inprogress)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(block.as_secs_f64())
        .query_async(conn)
        .await?;
    Ok(got.map(|payload| Lease {
        queue: q.name.clone(),
        list: q.inprogress.clone(),
        payload,
    }))
}
