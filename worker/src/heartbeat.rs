//! The heartbeat: every few seconds, tell Redis (and so the Busy page) that this process is
//! alive, what it runs, how much memory and CPU it uses; flush the stats; and pick up a
//! signal the Web UI left for it (`TSTP`, `TERM`, `TTIN`).
//!
//! One atomic pipeline per beat, in Ruby's order: stats, work hashes (both `:work` for
//! Sidekiq 6.4.2+ and `:workers` for Debian's 6.4.1), then `SADD processes`, the process
//! hash with a 60 s TTL, and `RPOP <identity>-signals`.

use crate::fetch;
use crate::runner::Shared;
use sidekiq_wire::keys;
use sidekiq_wire::process::CPU_FIELD;
use std::time::Instant;

/// Resident memory and CPU time of this process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessUsage {
    /// VmRSS in KiB.
    pub rss_kb: u64,
    /// User + system CPU seconds since start.
    pub cpu_secs: f64,
}

impl ProcessUsage {
    /// Reads `/proc/self/status` and `/proc/self/stat` (zeros where unavailable).
    pub fn read() -> Self {
        let rss_kb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            })
            .unwrap_or(0);
        let cpu_secs = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the parenthesised command name; utime and stime are the 14th and
                // 15th fields overall, i.e. the 12th and 13th after it.
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks: f64 =
                    f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
                Some(ticks / clock_ticks())
            })
            .unwrap_or(0.0);
        ProcessUsage { rss_kb, cpu_secs }
    }
}

#[allow(
    unsafe_code,
    reason = "sysconf is a plain libc query with no memory effects"
)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant; it has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU percent between two readings.
pub fn cpu_percent(prev: (Instant, f64), now: (Instant, f64)) -> f64 {
    let wall = now.0.duration_since(prev.0).as_secs_f64();
    if wall <= 0.0 {
        0.0
    } else {
        ((now.1 - prev.1) / wall * 100.0).max(0.0)
    }
}

/// One heartbeat. Returns the signal the Web UI left, if any.
///
/// # Errors
/// Redis errors (the stats taken for this beat are put back).
pub async fn beat(
    shared: &Shared,
    cpu: f64,
    usage: ProcessUsage,
) -> redis::RedisResult<Option<String>> {
    let mut conn = shared.redis.clone();
    let t0 = Instant::now();
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    let rtt_us = t0.elapsed().as_micros() as u64;

    let now = shared.clock.now();
    let now_utc = now.to_datetime();
    let pending = shared.stats.take();
    let work = shared.work_entries();
    let id = shared.identity.as_str();

    let mut pipe = redis::pipe();
    pipe.atomic();
    pending.write(&mut pipe, now_utc);
    for key in [keys::work(id), keys::workers(id)] {
        pipe.del(&key).ignore();
        if !work.is_empty() {
            pipe.hset_multiple(&key, &work).ignore();
            pipe.expire(&key, keys::HEARTBEAT_TTL_SECS).ignore();
        }
    }
    pipe.sadd(keys::PROCESSES, id).ignore();
    pipe.hset_multiple(
        id,
        &[
            ("info", shared.info_json.clone()),
            ("busy", work.len().to_string()),
            ("beat", now.to_json().to_string()),
            ("quiet", shared.is_quiet().to_string()),
            ("rss", usage.rss_kb.to_string()),
            ("rtt_us", rtt_us.to_string()),
            ("concurrency", shared.settings.concurrency.to_string()),
            (CPU_FIELD, format!("{cpu:.1}")),
        ],
    )
    .ignore();
    pipe.expire(id, keys::HEARTBEAT_TTL_SECS).ignore();
    // Re-registering every beat heals a registry entry another process removed while we
    // were unreachable (it found our heartbeat expired and moved our jobs back).
    pipe.hset_multiple(fetch::REGISTRY, &registry_entries(shared))
        .ignore();
    pipe.rpop(keys::signals(id), None);
    match pipe.query_async::<(Option<String>,)>(&mut conn).await {
        Ok((signal,)) => Ok(signal),
        Err(e) => {
            shared.stats.restore(pending);
            Err(e)
        }
    }
}

/// This process's lists in the recovery registry: its in-progress list per queue and its
/// scheduler staging list per sorted set (field = list key, value = owner and origin).
fn registry_entries(shared: &Shared) -> Vec<(String, String)> {
    let id = shared.identity.as_str();
    let queues = shared
        .lists()
        .map(|(queue, list)| (list.to_owned(), fetch::registry_entry_for_queue(id, queue)));
    let sets = [keys::RETRY, keys::SCHEDULE].into_iter().map(|set| {
        (
            fetch::staging_key(id, set),
            fetch::registry_entry_for_set(id, set),
        )
    });
    queues.chain(sets).collect()
}

/// Removes this process from the Busy page, after a final stats flush (clean shutdown).
///
/// # Errors
/// Redis errors.
pub async fn clear(shared: &Shared) -> redis::RedisResult<()> {
    let mut conn = shared.redis.clone();
    let now = shared.clock.now();
    let now_utc = now.to_datetime();
    let pending = shared.stats.take();
    let id = shared.identity.as_str();
    let mut pipe = redis::pipe();
    pipe.atomic();
    pending.write(&mut pipe, now_utc);
    pipe.srem(keys::PROCESSES, id).ignore();
    pipe.del(&[keys::work(id), keys::workers(id), id.to_owned()])
        .ignore();
    let fields: Vec<String> = registry_entries(shared)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    pipe.hdel(fetch::REGISTRY, fields).ignore();
    if let Err(e) = pipe.query_async::<()>(&mut conn).await {
        shared.stats.restore(pending);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_usage() {
        let u = ProcessUsage::read();
        assert!(u.rss_kb > 0);
        assert!(u.cpu_secs >= 0.0);
    }
}
