//! One multiplexed Redis connection shared by a whole process, that heals itself.
//!
//! redis-rs's `ConnectionManager` reconnects when a connection is reset, but keeps a
//! connection whose requests merely time out: after a silent partition (packets dropped,
//! no FIN or RST) every later request on it times out too, forever. [`RedisLink`] answers
//! every request within its response timeout, and any I/O failure (timeout, reset, refused,
//! EOF) throws the connection away, so the next request opens a fresh one: once the network
//! heals, the process works again by the next request.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A self-healing shared connection; clones share it. Implements redis-rs's
/// `ConnectionLike`, so it is used like any other connection.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: AsyncConnectionConfig,
    /// The connection in use and its generation (a failed request discards only the
    /// connection it ran on, not one another task has opened since).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// One connect attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    db: i64,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("db", &self.inner.db)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to `url`; connects on first use. Every request gets `response_timeout`,
    /// every connect attempt `connect_timeout`.
    ///
    /// # Errors
    /// A malformed URL.
    pub fn open(
        url: &str,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let db = client.get_connection_info().redis_settings().db();
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(connect_timeout));
        Ok(RedisLink {
            inner: Arc::new(Inner {
                client,
                config,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                db,
            }),
        })
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.inner.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Throws away the current connection: for a caller that gave up on a request before the
    /// link's own timeout did (the next request opens a new one).
    pub fn reset(&self) {
        let mut current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.take().is_some() {
            tracing::warn!(
                "Redis connection given up by its caller; the next request opens a new one"
            );
        }
    }

    /// Throws away the connection of `generation` if it is still the current one.
    fn discard(&self, generation: u64, error: &RedisError) {
        let mut current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::warn!(%error, "Redis connection dropped; the next request opens a new one");
            *current = None;
        }
    }

    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && is_broken(e)
        {
            self.discard(generation, e);
        }
        result
    }
}

/// Whether an error says the connection itself is unusable (rather than one command failing).
fn is_broken(e: &RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
