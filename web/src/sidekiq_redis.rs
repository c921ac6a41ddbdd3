//! The Sidekiq Redis, connected lazily so the web starts (and reports itself unready) while
//! Redis is down, and every call is bounded in time so a dead Redis never hangs a page.

use redis::aio::ConnectionManager;
use sidekiq_wire::Client;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest wait for connecting or for one read (page renders, health checks).
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

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
}

/// A lazily connected, auto-reconnecting Sidekiq Redis handle.
pub struct SidekiqRedis {
    url: String,
    client: Mutex<Option<Client>>,
}

impl SidekiqRedis {
    /// Nothing is connected yet.
    pub fn new(url: impl Into<String>) -> Self {
        SidekiqRedis {
            url: url.into(),
            client: Mutex::new(None),
        }
    }

    /// The push client, connecting on first use. Once connected, the connection manager
    /// reconnects by itself.
    ///
    /// # Errors
    /// [`RedisError`].
    pub async fn client(&self) -> Result<Client, RedisError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(READ_TIMEOUT, Client::connect(&self.url))
            .await
            .map_err(|_| RedisError::Timeout)??;
        *slot = Some(c.clone());
        Ok(c)
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
