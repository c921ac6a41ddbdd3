//! The Sidekiq Redis, connected lazily so the web starts (and reports itself unready) while
//! Redis is down, and every call is bounded in time so a dead Redis never hangs a page: after
//! a failed call, calls fail at once for [`RETRY_AFTER`], so a page that reads Redis three
//! times fails fast instead of waiting three times. The connection is a
//! [`RedisLink`]: one that a timeout or a reset throws away, so after a silent partition the
//! web works again with the first call once the network is back.
//!
//! Also the reads the web makes: bulk-send progress ([`SidekiqRedis::progress`]) and the
//! dashboard of processes, queues, totals and the local autoscaler
//! ([`SidekiqRedis::dashboard`]).

use mail_protocol::autoscaler::AutoscalerState;
use mail_protocol::{Progress, SendId};
use service_runtime::redis_link::RedisLink;
use sidekiq_wire::Client;
use sidekiq_wire::overview::{QueueSummary, Totals};
use sidekiq_wire::process::ProcessSnapshot;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Longest wait for connecting or for one read (page renders, health checks).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed call, calls fail at once for this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest wait for a write (a 1,000-job `LPUSH` on a busy server); a timed-out write may
/// still land, so this is generous.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting or a command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A push failed.
    #[error("push: {0}")]
    Push(#[from] sidekiq_wire::PushError),
    /// No answer within the time limit.
    #[error("redis did not answer in time")]
    Timeout,
    /// The last connect failed moments ago; not retried yet.
    #[error("redis unavailable (last connect failed)")]
    Unavailable,
}

/// Why Redis did not take a write, as a user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefusal {
    /// `maxmemory` reached under the `noeviction` policy (Redis answers `OOM`).
    MemoryFull,
    /// Not reachable, or no answer in time.
    Unreachable,
    /// Refused for another reason (read-only replica, a script error, …): see the log.
    Other,
}

impl RedisError {
    /// What kind of refusal this is.
    pub fn refusal(&self) -> WriteRefusal {
        let redis = match self {
            RedisError::Redis(e) | RedisError::Push(sidekiq_wire::PushError::Redis(e)) => e,
            RedisError::Timeout | RedisError::Unavailable => return WriteRefusal::Unreachable,
            RedisError::Push(_) => return WriteRefusal::Other,
        };
        // A transaction (`push_bulk` is MULTI/EXEC) fails as EXECABORT; the OOM is inside.
        let out_of_memory = redis.code() == Some("OOM")
            || redis
                .clone()
                .into_server_errors()
                .is_some_and(|errs| errs.iter().any(|(_, e)| e.code() == "OOM"));
        if out_of_memory {
            WriteRefusal::MemoryFull
        } else if redis.is_io_error()
            || redis.is_timeout()
            || redis.is_connection_dropped()
            || redis.is_connection_refusal()
        {
            WriteRefusal::Unreachable
        } else {
            WriteRefusal::Other
        }
    }
}

/// A lazily connected, auto-reconnecting Sidekiq Redis handle.
pub struct SidekiqRedis {
    url: String,
    client: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    client: Option<Client<RedisLink>>,
    failed_at: Option<Instant>,
}

impl SidekiqRedis {
    /// Nothing is connected yet.
    pub fn new(url: impl Into<String>) -> Self {
        SidekiqRedis {
            url: url.into(),
            client: Mutex::new(Slot::default()),
        }
    }

    /// The push client, connecting on first use; fails at once for [`RETRY_AFTER`] after a
    /// failed call.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn client(&self) -> Result<Client<RedisLink>, RedisError> {
        let mut slot = self.client.lock().await;
        if slot.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return Err(RedisError::Unavailable);
        }
        if let Some(c) = slot.client.as_ref() {
            return Ok(c.clone());
        }
        let link = RedisLink::open(&self.url, WRITE_TIMEOUT, READ_TIMEOUT)?;
        let client = Client::from_connection(link);
        let mut conn = client.connection();
        match tokio::time::timeout(
            READ_TIMEOUT,
            redis::cmd("PING").query_async::<()>(&mut conn),
        )
        .await
        {
            Ok(Ok(())) => {
                slot.client = Some(client.clone());
                slot.failed_at = None;
                Ok(client)
            }
            Ok(Err(e)) => {
                slot.failed_at = Some(Instant::now());
                Err(e.into())
            }
            Err(_) => {
                slot.failed_at = Some(Instant::now());
                Err(RedisError::Timeout)
            }
        }
    }

    /// Notes a failed call: the next ones fail fast for a moment, and the connection is
    /// thrown away (a silent partition leaves it dead even after the network heals), so the
    /// call after opens a new one.
    async fn failed(&self) {
        let mut slot = self.client.lock().await;
        slot.failed_at = Some(Instant::now());
        if let Some(c) = slot.client.as_ref() {
            c.connection().reset();
        }
    }

    /// Runs a read with a connection, bounded by [`READ_TIMEOUT`].
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn read<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(RedisLink) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let conn = self.client().await?.connection();
        let result = match tokio::time::timeout(READ_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !is_connection_trouble(&e) => return Err(e.into()),
            Ok(Err(e)) => Err(RedisError::from(e)),
            Err(_) => Err(RedisError::Timeout),
        };
        self.failed().await;
        result
    }

    /// `PING`.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.read(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }
}

/// What the workers panel shows, read in one go.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Live processes from their heartbeats.
    pub processes: Vec<ProcessSnapshot>,
    /// Every queue's size and latency.
    pub queues: Vec<QueueSummary>,
    /// Processed, failed, retry/scheduled/dead sizes.
    pub totals: Totals,
    /// The local autoscaler's last sync, when one runs (`mailworker:autoscaler`).
    pub autoscaler: Option<AutoscalerState>,
}

impl SidekiqRedis {
    /// The worker's counters for each bulk send, in order (missing ones read as zero).
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn progress(&self, sends: Vec<SendId>) -> Result<Vec<Progress>, RedisError> {
        self.read(
            |mut c| async move { mail_protocol::progress::read_progress(&mut c, &sends).await },
        )
        .await
    }

    /// [`SidekiqRedis::progress`] plus when each send's counters last moved (epoch ms of the
    /// Redis clock), in one round trip.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn progress_and_last_change(
        &self,
        sends: Vec<SendId>,
    ) -> Result<Vec<(Progress, Option<i64>)>, RedisError> {
        self.read(|mut c| async move {
            mail_protocol::progress::read_progress_and_last_change(&mut c, &sends).await
        })
        .await
    }

    /// Processes, queues and totals.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn dashboard(&self) -> Result<Dashboard, RedisError> {
        self.read(|mut c| async move {
            Ok(Dashboard {
                processes: sidekiq_wire::process::list_processes(&mut c).await?,
                queues: sidekiq_wire::overview::queues(&mut c).await?,
                totals: sidekiq_wire::overview::totals(&mut c).await?,
                autoscaler: AutoscalerState::load(&mut c).await?,
            })
        })
        .await
    }
}

/// Whether an error says Redis (or the way to it) is unusable rather than one command failed.
fn is_connection_trouble(e: &redis::RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}
