//! Reliable fetch (what Sidekiq Pro calls super_fetch): a job is moved atomically (`LMOVE`)
//! from `queue:<q>` into this process's private in-progress list and leaves it only in the
//! script that records its outcome ([`super::outcome`]). If the process dies, the job is
//! still in Redis, where [`super::recovery`] finds it.
//!
//! The list entry is the *lease*: completing a job whose entry is gone (because another
//! process already recovered it) writes nothing, so a job is never both requeued and retried.

use crate::queues::QueueSet;
use mail_protocol::keys as mailkeys;
use mail_protocol::progress::{PROGRESS_TTL_SECS, TRANSITION_LUA};
use mail_protocol::{MailSenderArgs, SendId};
use redis::aio::ConnectionLike;
use redis::{Script, Value};
use sidekiq_wire::keys;
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

/// Lua `bury(list, job, dead, cfg)`: takes an oversized job out of `list` and stores it in the
/// dead set with the reason appended, counting it as failed for its send — all in Redis, so the
/// worker never reads the payload. `cfg`: now, dead cutoff, max, progress TTL, and the key
/// prefixes of delivery states, progress and retrying hashes, and the retrying index.
const BURY_LUA: &str = r#"
local function bury(list, job, dead, cfg)
  redis.call('LREM', list, 1, job)
  local entry = job
  local ok, decoded = pcall(cjson.decode, job)
  if ok and type(decoded) == 'table' and string.sub(job, -1) == '}' then
    -- Later keys win in Ruby's and serde's JSON readers: the reason is what the Web UI shows.
    entry = string.sub(job, 1, -2) .. ',"error_class":"PayloadTooLargeError","error_message":"the payload is ' .. #job .. ' bytes, over MAX_PAYLOAD_BYTES (' .. cfg.max .. '); it was never run","failed_at":' .. cfg.now .. ',"retry_count":0}'
    local send = send_id_of(decoded)
    if send and type(decoded['jid']) == 'string' then
      transition(cfg.jid_prefix .. decoded['jid'], cfg.progress_prefix .. send, cfg.retrying_prefix .. send, cfg.index, decoded['jid'], send, 'dead', cfg.ttl, '1', '', '')
    end
  end
  redis.call('ZADD', dead, cfg.now, entry)
  redis.call('ZREMRANGEBYSCORE', dead, '-inf', cfg.cutoff)
  redis.call('ZREMRANGEBYRANK', dead, 0, -10000)
end
local cfg = {now = ARGV[1], cutoff = ARGV[2], max = tonumber(ARGV[3]), ttl = ARGV[4],
  jid_prefix = ARGV[5], progress_prefix = ARGV[6], retrying_prefix = ARGV[7], index = ARGV[8]}
"#;

/// For each requested slot, try the preferred queue, then the others in configured order.
/// A job over the size limit is buried in the dead set instead of returned (its index is
/// returned negated, with its size).
/// KEYS: (queue key, in-progress key) per queue, then `dead`. ARGV: cfg, then the preferred
/// queue index per slot.
static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_LUA}{SEND_ID_LUA}{BURY_LUA}{FETCH_LUA}",
        SEND_ID_LUA = MailSenderArgs::SEND_ID_LUA
    ))
});

const FETCH_LUA: &str = r"
local dead = KEYS[#KEYS]
local n = (#KEYS - 1) / 2
local out = {}
for s = 9, #ARGV do
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
  if #job > cfg.max then
    bury(KEYS[2*from], job, dead, cfg)
    out[#out+1] = -from
    out[#out+1] = tostring(#job)
  else
    out[#out+1] = from
    out[#out+1] = job
  end
end
return out
";

/// KEYS: in-progress list, `dead`. ARGV: cfg, the size of the job a blocking fetch just put at
/// the head of the list. Buries it (by position: the payload stays in Redis).
static BURY_HEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_LUA}{SEND_ID_LUA}{BURY_LUA}{BURY_HEAD_LUA}",
        SEND_ID_LUA = MailSenderArgs::SEND_ID_LUA
    ))
});

const BURY_HEAD_LUA: &str = r"
local job = redis.call('LINDEX', KEYS[1], 0)
if job and #job == tonumber(ARGV[9]) then
  bury(KEYS[1], job, KEYS[2], cfg)
  return 1
end
return 0
";

/// How big a payload the worker accepts (`MAX_PAYLOAD_BYTES`), and what it needs to bury a
/// bigger one.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimit {
    /// Largest payload in bytes.
    pub max: usize,
    /// Now, float seconds (the dead set's score).
    pub now: f64,
}

impl SizeLimit {
    fn cfg(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        // Written into the payload as JSON: a decimal point keeps it float seconds.
        invocation
            .arg(format!("{:.6}", self.now))
            .arg(self.now - keys::DEAD_TIMEOUT_SECS)
            .arg(self.max)
            .arg(PROGRESS_TTL_SECS)
            .arg(mailkeys::delivery(""))
            .arg(mailkeys::progress(&SendId::from_stored(String::new())))
            .arg(mailkeys::retrying(&SendId::from_stored(String::new())))
            .arg(mailkeys::RETRYING_INDEX);
    }
}

/// What one fetch brought.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Jobs to run.
    pub leases: Vec<Lease>,
    /// Sizes of jobs over the limit that went straight to the dead set.
    pub oversized: Vec<(String, usize)>,
}

/// Takes up to `first_choices.len()` jobs without waiting: slot `s` tries queue
/// `first_choices[s]` (an index into `queues`) first, then the others in order.
///
/// # Errors
/// Redis errors.
pub async fn take<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &QueueSet,
    first_choices: &[usize],
    limit: SizeLimit,
) -> redis::RedisResult<Fetched> {
    let mut invocation = FETCH.prepare_invoke();
    for q in queues.all() {
        invocation.key(&q.key).key(&q.inprogress);
    }
    invocation.key(keys::DEAD);
    limit.cfg(&mut invocation);
    for p in first_choices {
        invocation.arg(p + 1);
    }
    let raw: Vec<Value> = invocation.invoke_async(conn).await?;
    let mut out = Fetched::default();
    for pair in raw.chunks(2) {
        let (Some(idx), Some(payload)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let idx: i64 = redis::from_redis_value_ref(idx)?;
        let Some(q) = usize::try_from(idx.unsigned_abs())
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| queues.get(i))
        else {
            continue;
        };
        if idx < 0 {
            let size: String = redis::from_redis_value_ref(payload)?;
            out.oversized
                .push((q.name.clone(), size.parse().unwrap_or_default()));
            continue;
        }
        out.leases.push(Lease {
            queue: q.name.clone(),
            list: q.inprogress.clone(),
            payload: redis::from_redis_value_ref(payload)?,
        });
    }
    Ok(out)
}

/// Waits up to `block` for a job in queue `index` (`BLMOVE`), on a connection of its own.
/// A job over the limit that arrives meanwhile is read once (a blocking move returns what it
/// moves) and buried at once, by position.
///
/// # Errors
/// Redis errors.
pub async fn wait_for_one<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &QueueSet,
    index: usize,
    block: Duration,
    limit: SizeLimit,
) -> redis::RedisResult<Fetched> {
    let mut out = Fetched::default();
    let Some(q) = queues.get(index) else {
        return Ok(out);
    };
    let got: Option<Vec<u8>> = redis::cmd("BLMOVE")
        .arg(&q.key)
        .arg(&q.inprogress)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(block.as_secs_f64())
        .query_async(conn)
        .await?;
    let Some(payload) = got else {
        return Ok(out);
    };
    if payload.len() > limit.max {
        let size = payload.len();
        drop(payload);
        let mut invocation = BURY_HEAD.prepare_invoke();
        invocation.key(&q.inprogress).key(keys::DEAD);
        limit.cfg(&mut invocation);
        invocation.arg(size);
        invocation.invoke_async::<i64>(conn).await?;
        out.oversized.push((q.name.clone(), size));
        return Ok(out);
    }
    out.leases.push(Lease {
        queue: q.name.clone(),
        list: q.inprogress.clone(),
        payload,
    });
    Ok(out)
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
