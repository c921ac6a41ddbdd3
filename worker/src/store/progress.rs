//! Keeping each bulk send's progress exact when jobs are removed behind the worker's back,
//! at a cost that does not grow with the backlog.
//!
//! Counters move through [`mail_protocol::progress::TRANSITION_LUA`]'s `transition()` when
//! the worker records an outcome. Two things happen without the worker seeing them:
//!
//! - **A retrying job is killed or deleted from the Web UI's Retries page.** Each retrying jid
//!   is stored with the exact retry-set member it was written as, so one `ZSCORE` says whether
//!   it is still there, a second whether it was killed (it is then in `dead` unchanged). If it
//!   is in neither, a "Retry Now" may have pushed it to the head of its queue: only the first
//!   [`QUEUE_HEAD`] jobs of that queue and the in-flight lists are looked at, never a whole
//!   queue. Not found twice in a row ⇒ counted as failed. (A misjudged one heals: when it
//!   runs, its state moves on from `dead`.) Our own poller marks what it moves back to a
//!   queue, so those are never suspected.
//! - **Queued jobs are deleted** (one by one, or the whole queue). A registered send whose
//!   counters fall short of its total while its queue is empty and none of its jobs is in
//!   flight or scheduled, twice in a row with no progress in between, has its missing jobs
//!   counted as cancelled. While its queue still holds jobs, nothing can be said cheaply, so
//!   nothing is said: the send completes once the queue has drained.
//!
//! Only one process reconciles per interval ([`RECONCILE_LOCK`]); every read is bounded.

use mail_protocol::keys::{self as mailkeys, RECONCILE_LOCK, RETRYING_INDEX, SENDS};
use mail_protocol::progress::{PROGRESS_TTL_SECS, REQUEUED, TRANSITION_LUA};
use mail_protocol::{MailSenderArgs, SendId};
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::{Job, keys};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

/// Jobs looked at from the head of a queue when a retried job may have gone there.
pub const QUEUE_HEAD: isize = 1_000;

/// Entries read per round trip from a send's retrying hash or the schedule set.
const SCAN_COUNT: usize = 500;

/// KEYS: jid state, progress hash, retrying hash, index. ARGV: jid, send id, TTL.
static MARK_LOST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_LUA}return transition(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], 'dead', ARGV[3], '1', 'retrying', '')"
    ))
});

/// KEYS: progress hash. ARGV: jobs to count as cancelled, the counts they were computed from
/// (sent, failed, retrying, cancelled). Adds them only if nothing moved meanwhile.
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('HMGET', KEYS[1], 'sent', 'failed', 'retrying', 'cancelled')
for i = 1, 4 do
  if tonumber(now[i] or '0') ~= tonumber(ARGV[i + 1]) then return 0 end
end
redis.call('HINCRBY', KEYS[1], 'cancelled', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
",
    )
});

/// What was suspicious in the previous pass (the second strike counts).
#[derive(Debug, Default)]
pub struct Suspects {
    /// Retrying jids found nowhere.
    jids: HashSet<String>,
    /// Sends short of their total with nothing left anywhere, and the counts seen.
    sends: HashMap<String, [i64; 4]>,
}

/// What one pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Whether this process held the lock and looked at all.
    pub ran: bool,
    /// Retrying jids now counted as failed.
    pub lost: Vec<String>,
    /// Sends whose missing jobs are now counted as cancelled, with how many.
    pub cancelled: Vec<(String, i64)>,
}

/// One reconciliation pass, if no other process has done one within `interval`.
///
/// # Errors
/// Redis errors.
pub async fn reconcile<C: ConnectionLike + Send>(
    conn: &mut C,
    identity: &str,
    interval: Duration,
    suspects: &mut Suspects,
) -> redis::RedisResult<Reconciled> {
    let mut out = Reconciled::default();
    let locked: Option<String> = redis::cmd("SET")
        .arg(RECONCILE_LOCK)
        .arg(identity)
        .arg("NX")
        .arg("PX")
        .arg(interval.as_millis().max(1) as u64)
        .query_async(conn)
        .await?;
    if locked.is_none() {
        return Ok(out);
    }
    out.ran = true;
    let mut places = Places::default();
    out.lost = retrying_jobs(conn, &mut places, &mut suspects.jids).await?;
    out.cancelled = sends(conn, &mut places, &mut suspects.sends).await?;
    Ok(out)
}

/// Where a job can be besides the retry set, read lazily and at most once per pass.
#[derive(Default)]
struct Places {
    /// Payloads in every in-progress and staging list (bounded by the fleet's concurrency).
    in_flight: Option<Vec<Job>>,
    /// Jids at the head of each queue looked at.
    queue_heads: HashMap<String, HashSet<String>>,
}

impl Places {
    async fn in_flight<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
    ) -> redis::RedisResult<&[Job]> {
        if self.in_flight.is_none() {
            let lists: Vec<String> = redis::cmd("HKEYS")
                .arg(mailkeys::REGISTRY)
                .query_async(conn)
                .await?;
            let mut jobs = Vec::new();
            for list in lists {
                let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(&list)
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await?;
                jobs.extend(items.iter().filter_map(|i| parse(i)));
            }
            self.in_flight = Some(jobs);
        }
        Ok(self.in_flight.as_deref().unwrap_or_default())
    }

    async fn queue_head<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
        queue: &str,
    ) -> redis::RedisResult<&HashSet<String>> {
        if !self.queue_heads.contains_key(queue) {
            let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(keys::queue(queue))
                .arg(0)
                .arg(QUEUE_HEAD - 1)
                .query_async(conn)
                .await?;
            let jids = items
                .iter()
                .filter_map(|i| parse(i))
                .map(|j| j.jid().to_owned())
                .collect();
            self.queue_heads.insert(queue.to_owned(), jids);
        }
        Ok(&self.queue_heads[queue])
    }
}

fn parse(raw: &[u8]) -> Option<Job> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| Job::parse(s).ok())
}

/// Retrying jids killed or deleted from the Web UI: counted as failed.
async fn retrying_jobs<C: ConnectionLike + Send>(
    conn: &mut C,
    places: &mut Places,
    suspects: &mut HashSet<String>,
) -> redis::RedisResult<Vec<String>> {
    let sends: Vec<String> = redis::cmd("SMEMBERS")
        .arg(RETRYING_INDEX)
        .query_async(conn)
        .await?;
    let mut lost = Vec::new();
    let mut next = HashSet::new();
    for send in sends.into_iter().map(SendId::from_stored) {
        let key = mailkeys::retrying(&send);
        let mut cursor = 0u64;
        let mut seen_any = false;
        loop {
            let (next_cursor, entries): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(conn)
                .await?;
            seen_any |= !entries.is_empty();
            for (jid, member) in entries {
                if still_alive(conn, places, &jid, &member).await? {
                    continue;
                }
                if !suspects.contains(&jid) {
                    next.insert(jid);
                    continue;
                }
                let changed: i64 = MARK_LOST
                    .key(mailkeys::delivery(&jid))
                    .key(mailkeys::progress(&send))
                    .key(&key)
                    .key(RETRYING_INDEX)
                    .arg(&jid)
                    .arg(send.as_str())
                    .arg(PROGRESS_TTL_SECS)
                    .invoke_async(conn)
                    .await?;
                if changed == 1 {
                    lost.push(jid);
                }
            }
            cursor = next_cursor;
            if cursor == 0 {
                break;
            }
        }
        if !seen_any {
            redis::cmd("SREM")
                .arg(RETRYING_INDEX)
                .arg(send.as_str())
                .query_async::<()>(conn)
                .await?;
        }
    }
    *suspects = next;
    Ok(lost)
}

/// Whether a retrying job can still run: in the retry set as written, moved back to a queue
/// by a poller, or (after a Web UI Retry Now) at the head of its queue or in flight. Killed
/// jobs (in `dead` unchanged) cannot.
async fn still_alive<C: ConnectionLike + Send>(
    conn: &mut C,
    places: &mut Places,
    jid: &str,
    member: &[u8],
) -> redis::RedisResult<bool> {
    if member == REQUEUED.as_bytes() {
        return Ok(true);
    }
    let (in_retry, in_dead): (Option<f64>, Option<f64>) = redis::pipe()
        .zscore(keys::RETRY, member)
        .zscore(keys::DEAD, member)
        .query_async(conn)
        .await?;
    if in_retry.is_some() {
        return Ok(true);
    }
    if in_dead.is_some() {
        return Ok(false);
    }
    let queue = parse(member)
        .and_then(|j| j.queue().map(str::to_owned))
        .unwrap_or_else(|| "default".into());
    if places.queue_head(conn, &queue).await?.contains(jid) {
        return Ok(true);
    }
    Ok(places.in_flight(conn).await?.iter().any(|j| j.jid() == jid))
}

/// Sends short of their total with nothing of them left anywhere: counted as cancelled.
async fn sends<C: ConnectionLike + Send>(
    conn: &mut C,
    places: &mut Places,
    suspects: &mut HashMap<String, [i64; 4]>,
) -> redis::RedisResult<Vec<(String, i64)>> {
    let sends: Vec<String> = redis::cmd("SMEMBERS").arg(SENDS).query_async(conn).await?;
    let mut cancelled = Vec::new();
    let mut next = HashMap::new();
    for send in sends.into_iter().map(SendId::from_stored) {
        let (total, queue): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(mailkeys::send(&send))
            .arg(&["total", "queue"])
            .query_async(conn)
            .await?;
        let (Some(total), Some(queue)) = (total, queue) else {
            // Expired with its progress (7 days): nothing left to watch.
            remove_send(conn, &send).await?;
            continue;
        };
        let p = mail_protocol::progress::read_progress(conn, std::slice::from_ref(&send))
            .await?
            .pop()
            .unwrap_or_default();
        if p.ended() >= total {
            remove_send(conn, &send).await?;
            continue;
        }
        let missing = total - p.ended() - p.retrying;
        if missing <= 0 || !nothing_left(conn, places, &send, &queue).await? {
            continue;
        }
        let counts = [p.sent, p.failed, p.retrying, p.cancelled];
        if suspects.get(send.as_str()) != Some(&counts) {
            next.insert(send.as_str().to_owned(), counts);
            continue;
        }
        let done: i64 = CANCEL
            .key(mailkeys::progress(&send))
            .arg(missing)
            .arg(p.sent)
            .arg(p.failed)
            .arg(p.retrying)
            .arg(p.cancelled)
            .arg(PROGRESS_TTL_SECS)
            .invoke_async(conn)
            .await?;
        if done == 1 {
            cancelled.push((send.as_str().to_owned(), missing));
        }
    }
    *suspects = next;
    Ok(cancelled)
}

async fn remove_send<C: ConnectionLike + Send>(
    conn: &mut C,
    send: &SendId,
) -> redis::RedisResult<()> {
    redis::cmd("SREM")
        .arg(SENDS)
        .arg(send.as_str())
        .query_async(conn)
        .await
}

/// Whether no job of `send` can still run: its queue is empty and none is in flight or in
/// `schedule` (where recovered jobs wait out their grace).
async fn nothing_left<C: ConnectionLike + Send>(
    conn: &mut C,
    places: &mut Places,
    send: &SendId,
    queue: &str,
) -> redis::RedisResult<bool> {
    let queued: u64 = redis::cmd("LLEN")
        .arg(keys::queue(queue))
        .query_async(conn)
        .await?;
    if queued > 0 {
        return Ok(false);
    }
    let belongs = |j: &Job| {
        MailSenderArgs::from_job(j)
            .ok()
            .and_then(|a| a.send_id())
            .is_some_and(|s| &s == send)
    };
    if places.in_flight(conn).await?.iter().any(belongs) {
        return Ok(false);
    }
    let mut cursor = 0u64;
    loop {
        let (next_cursor, members): (u64, Vec<Vec<u8>>) = redis::cmd("ZSCAN")
            .arg(keys::SCHEDULE)
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await?;
        // ZSCAN answers member, score, member, score, …
        if members
            .chunks(2)
            .filter_map(|m| parse(&m[0]))
            .any(|j| belongs(&j))
        {
            return Ok(false);
        }
        cursor = next_cursor;
        if cursor == 0 {
            return Ok(true);
        }
    }
}
