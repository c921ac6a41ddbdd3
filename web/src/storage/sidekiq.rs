//! The Sidekiq Redis, connected lazily so the web starts (and reports itself unready) while
//! Redis is down, and every call is bounded in time so a dead Redis never hangs a page: a
//! failed connect is not retried for [`RETRY_AFTER`], so a page that reads Redis three times
//! fails fast instead of waiting three times.
//!
//! Also the reads the web makes: bulk-send progress ([`SidekiqRedis::progress`]) and the
//! dashboard of processes, queues and totals ([`SidekiqRedis::dashboard`]).

use mail_protocol::{Progress, SendId};
use redis::aio::ConnectionManager;
use sidekiq_wire::Client;
use sidekiq_wire::overview::{QueueSummary, Totals};
use sidekiq_wire::process::ProcessSnapshot;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Longest wait for connecting or for one read (page renders, health checks).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connect, calls fail at once for this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

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

/// A lazily connected, auto-reconnecting Sidekiq Redis handle.
pub struct SidekiqRedis {
    url: String,
    client: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    client: Option<Client>,
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

    /// The push client, connecting on first use. Once connected, the connection manager
    /// reconnects by itself.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn client(&self) -> Result<Client, RedisError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.client.as_ref() {
            return Ok(c.clone());
        }
        if slot.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return Err(RedisError::Unavailable);
        }
        match tokio::time::timeout(READ_TIMEOUT, connect(&self.url)).await {
            Ok(Ok(c)) => {
                slot.client = Some(c.clone());
                slot.failed_at = None;
                Ok(c)
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

    /// Runs a read with a connection, bounded by [`READ_TIMEOUT`].
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn read<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let conn = self.client().await?.connection();
        tokio::time::timeout(READ_TIMEOUT, f(conn))
            .await
            .map_err(|_| RedisError::Timeout)?
            .map_err(RedisError::from)
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
            let counts = mail_protocol::progress::read_progress(&mut c, &sends).await?;
            let times = mail_protocol::progress::read_last_change_ms(&mut c, &sends).await?;
            Ok(counts.into_iter().zip(times).collect())
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
            })
        })
        .await
    }
}

/// Like [`sidekiq_wire::Client::connect`] (same generous response timeout for pushes), but
/// one connect attempt instead of the connection manager's six with backoff: the caller
/// decides when to try again.
async fn connect(url: &str) -> Result<Client, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(READ_TIMEOUT))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let manager = ConnectionManager::new_with_config(client, config).await?;
    Ok(Client::from_connection(manager))
}
