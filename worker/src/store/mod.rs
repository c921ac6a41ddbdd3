//! Every Redis round trip and Lua script of the worker, as functions over a connection and
//! plain values. Nothing here holds state or decides policy: the roles above (manager,
//! processor, tasks) decide, these functions read and write.
//!
//! - [`fetch`]: moving jobs from queues into this process's in-progress lists.
//! - [`outcome`]: releasing a lease and recording what became of the job, atomically.
//! - [`recovery`]: giving back the lists of processes that are gone.
//! - [`progress`]: reconciling bulk-send counters with jobs removed behind our back.
//! - [`schedule`]: moving due jobs from `retry`/`schedule` to their queues.
//! - [`heartbeat`]: the Busy-page heartbeat and leaving the Busy page.
//! - [`stats`]: flushing Sidekiq's counters and Metrics-page data.

pub mod fetch;
pub mod heartbeat;
pub mod outcome;
pub mod progress;
pub mod recovery;
pub mod schedule;
pub mod stats;

use service_runtime::redis_link::RedisLink;
use std::time::Duration;

/// How long any request on the shared connection may take before the connection is
/// replaced: long enough for a `SCARD` on a busy Redis, short enough that a partition is
/// noticed within one heartbeat.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared, self-healing connection for everything but blocking fetches.
///
/// Redis not being reachable yet is not an error: this waits with backoff (logging each
/// attempt), so a pod never crash-loops over a Redis restart.
///
/// # Errors
/// A malformed `REDIS_URL`.
pub async fn connect(url: &str) -> redis::RedisResult<RedisLink> {
    let mut link = RedisLink::open(url, RESPONSE_TIMEOUT, Duration::from_secs(5))?;
    let mut delay = Duration::from_millis(100);
    loop {
        match redis::cmd("PING").query_async::<()>(&mut link).await {
            Ok(()) => return Ok(link),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Redis not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
