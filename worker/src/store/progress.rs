//! Keeping each bulk send's progress exact when jobs are removed behind the worker's back.
//!
//! Counters move only through [`mail_protocol::progress::TRANSITION_LUA`]'s `transition()`,
//! which the worker runs when it records an outcome. But the Web UI can also Kill or Delete a
//! job from the Retries page without the worker ever seeing it again, which would leave it
//! counted as `retrying` forever. So [`reconcile`] looks for retrying jids that are nowhere a
//! job can be (retry and schedule sets, queues, in-progress and staging lists) in two passes
//! in a row, and counts them as failed. A misjudged job heals itself: when it runs again, its
//! state moves on from `dead` like any other.

use mail_protocol::SendId;
use mail_protocol::keys::{self as mailkeys, RETRYING_INDEX};
use mail_protocol::progress::{PROGRESS_TTL_SECS, TRANSITION_LUA};
use redis::Script;
use redis::aio::ConnectionLike;
use sidekiq_wire::{Job, keys};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// KEYS: jid state, progress hash, retrying set, index. ARGV: jid, mail_job_id, TTL.
static MARK_LOST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRANSITION_LUA}return transition(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], 'dead', ARGV[3], '1', 'retrying')"
    ))
});

/// Retrying jids that were nowhere in the previous pass (the second strike counts).
#[derive(Debug, Default)]
pub struct Suspects(HashSet<String>);

/// One reconciliation pass. Returns the jids counted as failed.
///
/// # Errors
/// Redis errors.
pub async fn reconcile<C: ConnectionLike + Send>(
    conn: &mut C,
    suspects: &mut Suspects,
) -> redis::RedisResult<Vec<String>> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(RETRYING_INDEX)
        .query_async(conn)
        .await?;
    let mut retrying: HashMap<String, SendId> = HashMap::new();
    for id in ids.into_iter().map(SendId::from_stored) {
        let jids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(mailkeys::retrying(&id))
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
            .key(mailkeys::delivery(&jid))
            .key(mailkeys::progress(&id))
            .key(mailkeys::retrying(&id))
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
async fn payloads_anywhere<C: ConnectionLike + Send>(
    conn: &mut C,
) -> redis::RedisResult<Vec<String>> {
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
        .arg(mailkeys::REGISTRY)
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
