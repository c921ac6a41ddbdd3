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
    /// The payload exactly as fetched: bytes, because any client can push anything, and a
    /// payload that is not UTF-8 must still be released, byte for byte.
    pub payload: Vec<u8>,
}

impl Lease {
    /// The payload as text, if it is UTF-8.
    ///
    /// # Errors
    /// The payload is not UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.payload)
    }
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
        let payload: Vec<u8> = redis::from_redis_value_ref(payload)?;
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
    let got: Option<Vec<u8>> = redis::cmd("BLMOVE")
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

/// KEYS: in-progress list, queue. ARGV: payload. Gives one job that nobody runs back to the
/// end of its queue that is fetched next, if it is still in the list.
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
",
    )
});

/// Gives back every job in this process's in-progress lists that is not in `running` (a
/// multiset of payloads): jobs a fetch moved here whose reply never arrived. Call it only
/// while no fetch of this process is in flight. Returns how many went back.
///
/// # Errors
/// Redis errors (what was not given back yet stays for the next call, or for the exit).
pub async fn give_back_unclaimed<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &QueueSet,
    running: &[Lease],
) -> redis::RedisResult<usize> {
    let mut given = 0;
    for q in queues.all() {
        let held: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&q.inprogress)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        let mut claimed: Vec<&[u8]> = running
            .iter()
            .filter(|l| l.list == q.inprogress)
            .map(|l| l.payload.as_slice())
            .collect();
        for item in held {
            if let Some(i) = claimed.iter().position(|c| *c == item.as_slice()) {
                claimed.swap_remove(i);
                continue;
            }
            let back: i64 = GIVE_BACK
                .key(&q.inprogress)
                .key(&q.key)
                .arg(&item)
                .invoke_async(conn)
                .await?;
            given += back as usize;
        }
    }
    Ok(given)
}
