//! The numbers the Sidekiq dashboard shows, read the way its pages read them.
//!
//! Used by the web's Workers panel and by the worker's queue gauges on `/metrics`.

use crate::job::Job;
use crate::keys;
use crate::timestamp::Timestamp;

/// One queue: its size and the age of its oldest job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueSummary {
    /// Queue name (without `queue:`).
    pub name: String,
    /// `LLEN queue:<name>`.
    pub size: u64,
    /// Seconds since the oldest job was enqueued (`enqueued_at`, else `created_at`, as 8.x);
    /// 0 for an empty queue or an unreadable job.
    pub latency_secs: f64,
}

/// Dashboard totals.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Totals {
    /// `stat:processed`.
    pub processed: u64,
    /// `stat:failed`.
    pub failed: u64,
    /// `ZCARD schedule`.
    pub scheduled: u64,
    /// `ZCARD retry`.
    pub retries: u64,
    /// `ZCARD dead`.
    pub dead: u64,
    /// `SCARD processes`.
    pub processes: u64,
}

/// Every queue in `queues`, sorted by name.
///
/// # Errors
/// Redis errors.
pub async fn queues<C>(conn: &mut C) -> Result<Vec<QueueSummary>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::QUEUES)
        .query_async(conn)
        .await?;
    names.sort();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for n in &names {
        pipe.cmd("LLEN").arg(keys::queue(n));
        pipe.cmd("LINDEX").arg(keys::queue(n)).arg(-1);
    }
    let raw: Vec<redis::Value> = pipe.query_async(conn).await?;
    let now = Timestamp::now().as_secs();
    let mut out = Vec::with_capacity(names.len());
    for (name, pair) in names.into_iter().zip(raw.chunks(2)) {
        let size: u64 = redis::from_redis_value_ref(&pair[0]).unwrap_or(0);
        let oldest: Option<String> = redis::from_redis_value_ref(&pair[1]).unwrap_or(None);
        let latency_secs = oldest
            .and_then(|s| Job::parse(&s).ok())
            .and_then(|j| j.enqueued_at().or_else(|| j.created_at()))
            .map_or(0.0, |t| (now - t.as_secs()).max(0.0));
        out.push(QueueSummary {
            name,
            size,
            latency_secs,
        });
    }
    Ok(out)
}

/// Dashboard totals.
///
/// # Errors
/// Redis errors.
pub async fn totals<C>(conn: &mut C) -> Result<Totals, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let (processed, failed, scheduled, retries, dead, processes): (
        Option<u64>,
        Option<u64>,
        u64,
        u64,
        u64,
        u64,
    ) = redis::pipe()
        .get(keys::STAT_PROCESSED)
        .get(keys::STAT_FAILED)
        .zcard(keys::SCHEDULE)
        .zcard(keys::RETRY)
        .zcard(keys::DEAD)
        .scard(keys::PROCESSES)
        .query_async(conn)
        .await?;
    Ok(Totals {
        processed: processed.unwrap_or(0),
        failed: failed.unwrap_or(0),
        scheduled,
        retries,
        dead,
        processes,
    })
}
