//! The Busy-page heartbeat and leaving the Busy page.
//!
//! One atomic pipeline per beat, in Ruby's order: stats, work hashes (both `:work` for
//! Sidekiq 6.4.2+ and `:workers` for Debian's 6.4.1), then `SADD processes`, the process
//! hash with a 60 s TTL, the reliable-fetch registry, and `RPOP <identity>-signals`.

use super::stats::add_flush;
use crate::stats::Pending;
use mail_protocol::keys as mailkeys;
use redis::aio::ConnectionLike;
use service_runtime::usage::ProcessUsage;
use sidekiq_wire::Timestamp;
use sidekiq_wire::keys;
use sidekiq_wire::process::CPU_FIELD;
use std::time::Instant;

/// Everything one beat writes.
#[derive(Debug)]
pub struct Beat<'a> {
    /// The process identity (hash key).
    pub identity: &'a str,
    /// The `info` JSON.
    pub info_json: &'a str,
    /// Work-hash entries of the running jobs.
    pub work: &'a [(String, String)],
    /// Whether the process is quiet.
    pub quiet: bool,
    /// Worker slots.
    pub concurrency: usize,
    /// Memory and CPU time now.
    pub usage: ProcessUsage,
    /// CPU use since the last beat, percent of one core.
    pub cpu_percent: f64,
    /// This process's reliable-fetch registry entries (re-written every beat).
    pub registry: &'a [(String, String)],
    /// Stats to flush.
    pub stats: &'a Pending,
    /// The time of the beat.
    pub now: Timestamp,
}

/// One heartbeat. Returns the signal the Web UI left, if any.
///
/// # Errors
/// Redis errors (nothing of `stats` was written then: the caller puts them back).
pub async fn beat<C: ConnectionLike + Send>(
    conn: &mut C,
    b: &Beat<'_>,
) -> redis::RedisResult<Option<String>> {
    let t0 = Instant::now();
    redis::cmd("PING").query_async::<()>(conn).await?;
    let rtt_us = t0.elapsed().as_micros() as u64;

    let mut pipe = redis::pipe();
    pipe.atomic();
    add_flush(&mut pipe, b.stats, b.now.to_datetime());
    for key in [keys::work(b.identity), keys::workers(b.identity)] {
        pipe.del(&key).ignore();
        if !b.work.is_empty() {
            pipe.hset_multiple(&key, b.work).ignore();
            pipe.expire(&key, keys::HEARTBEAT_TTL_SECS).ignore();
        }
    }
    pipe.sadd(keys::PROCESSES, b.identity).ignore();
    pipe.hset_multiple(
        b.identity,
        &[
            ("info", b.info_json.to_owned()),
            ("busy", b.work.len().to_string()),
            ("beat", b.now.to_json().to_string()),
            ("quiet", b.quiet.to_string()),
            ("rss", b.usage.rss_kb.to_string()),
            ("rtt_us", rtt_us.to_string()),
            ("concurrency", b.concurrency.to_string()),
            (CPU_FIELD, format!("{:.1}", b.cpu_percent)),
        ],
    )
    .ignore();
    pipe.expire(b.identity, keys::HEARTBEAT_TTL_SECS).ignore();
    // Re-registering every beat heals a registry entry another process removed while we
    // were unreachable (it found our heartbeat expired and moved our jobs back).
    pipe.hset_multiple(mailkeys::REGISTRY, b.registry).ignore();
    pipe.rpop(keys::signals(b.identity), None);
    let (signal,): (Option<String>,) = pipe.query_async(conn).await?;
    Ok(signal)
}

/// Removes the process from the Busy page and the registry, after a final stats flush
/// (clean stop).
///
/// # Errors
/// Redis errors (nothing of `stats` was written then).
pub async fn clear<C: ConnectionLike + Send>(
    conn: &mut C,
    identity: &str,
    registry: &[(String, String)],
    stats: &Pending,
    now: Timestamp,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    add_flush(&mut pipe, stats, now.to_datetime());
    pipe.srem(keys::PROCESSES, identity).ignore();
    pipe.del(&[
        keys::work(identity),
        keys::workers(identity),
        identity.to_owned(),
    ])
    .ignore();
    let fields: Vec<&str> = registry.iter().map(|(f, _)| f.as_str()).collect();
    pipe.hdel(mailkeys::REGISTRY, fields).ignore();
    pipe.query_async::<()>(conn).await
}
