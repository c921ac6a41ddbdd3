//! Enqueueing jobs the way `Sidekiq::Client` does: `SADD queues` + `LPUSH queue:<q>`.
//!
//! Why not the `sidekiq` crate (spk/rust-sidekiq 0.14)? It writes integer-second timestamps
//! (Sidekiq 8 reads them as milliseconds: 1970 dates, 54 years of latency), cannot write
//! `retry: false`, pushes a whole bulk into the first job's queue and drags in smol and
//! OpenSSL. This module is the ~150 lines we need instead.

use crate::job::Job;
use crate::keys;
use crate::timestamp::Timestamp;
use redis::aio::{ConnectionLike, ConnectionManager};
use std::time::Duration;

/// Jobs per `LPUSH` in [`Client::push_bulk`] (Ruby's `push_bulk` batch size).
pub const BULK_CHUNK: usize = 1_000;

/// A push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Redis refused or could not be reached; nothing of that chunk was written.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The Web UI cannot open queues whose names fall outside `[a-zA-Z0-9_:.-]`.
    #[error("invalid queue name {0:?}: use letters, digits, '_', ':', '.', '-'")]
    InvalidQueue(String),
}

/// Whether the Sidekiq Web UI can show a queue of this name (its router's `QUEUE_NAME`).
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
}

/// A cheap-to-clone handle for enqueueing jobs, over any cloneable async connection (by
/// default redis-rs's auto-reconnecting `ConnectionManager`).
#[derive(Clone)]
pub struct Client<C = ConnectionManager> {
    conn: C,
}

impl Client<ConnectionManager> {
    /// Connects to `url` (`redis://host:port/db`) with an auto-reconnecting connection.
    ///
    /// # Errors
    /// A malformed URL or an unreachable server.
    pub async fn connect(url: &str) -> Result<Self, PushError> {
        let client = redis::Client::open(url)?;
        // redis 1.x defaults to a 500 ms response timeout; a 1,000-job LPUSH on a busy
        // server can take longer, and a timed-out write may still land (then a retry would
        // duplicate jobs), so give writes room.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Client { conn })
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Client<C> {
    /// Wraps an existing connection. A timed-out write may still land, so give it a response
    /// timeout of several seconds (a 1,000-job `LPUSH` on a busy server takes time).
    pub fn from_connection(conn: C) -> Self {
        Client { conn }
    }

    /// The underlying connection, for reads alongside pushes.
    pub fn connection(&self) -> C {
        self.conn.clone()
    }

    /// Enqueues one job now; returns its jid.
    ///
    /// # Errors
    /// [`PushError`].
    pub async fn push(&self, job: Job) -> Result<String, PushError> {
        let mut jids = self.push_bulk(vec![job]).await?;
        Ok(jids.pop().unwrap_or_default())
    }

    /// Enqueues many jobs now: grouped by queue, 1,000 per `LPUSH`, one `enqueued_at` for the
    /// whole batch, each chunk written atomically. Returns the jids in input order.
    ///
    /// # Errors
    /// [`PushError`]; chunks written before the error stay written.
    pub async fn push_bulk(&self, jobs: Vec<Job>) -> Result<Vec<String>, PushError> {
        let now = Timestamp::now();
        let jids: Vec<String> = jobs.iter().map(|j| j.jid().to_owned()).collect();
        let mut by_queue: Vec<(String, Vec<String>)> = Vec::new();
        for mut job in jobs {
            let queue = job.queue().unwrap_or("default").to_owned();
            if !valid_queue_name(&queue) {
                return Err(PushError::InvalidQueue(queue));
            }
            job.set_queue(queue.clone());
            job.clear_at();
            job.ensure_created_at(now);
            job.set_enqueued_at(now);
            let payload = job.to_json_string();
            match by_queue.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, payloads)) => payloads.push(payload),
                None => by_queue.push((queue, vec![payload])),
            }
        }
        let mut conn = self.conn.clone();
        for (queue, payloads) in &by_queue {
            for chunk in payloads.chunks(BULK_CHUNK) {
                redis::pipe()
                    .atomic()
                    .sadd(keys::QUEUES, queue)
                    .ignore()
                    .lpush(keys::queue(queue), chunk)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(jids)
    }

    /// Schedules a job to run at `at`: `ZADD schedule <at> <payload>`, without `at` or
    /// `enqueued_at` in the payload (7.x/8.x strip both). Returns the jid.
    ///
    /// # Errors
    /// [`PushError`].
    pub async fn schedule(&self, mut job: Job, at: Timestamp) -> Result<String, PushError> {
        let queue = job.queue().unwrap_or("default").to_owned();
        if !valid_queue_name(&queue) {
            return Err(PushError::InvalidQueue(queue));
        }
        job.set_queue(queue);
        job.clear_at();
        job.clear_enqueued_at();
        job.ensure_created_at(Timestamp::now());
        let mut conn = self.conn.clone();
        redis::cmd("ZADD")
            .arg(keys::SCHEDULE)
            .arg(at.to_score())
            .arg(job.to_json_string())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(job.jid().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_the_web_ui_can_open() {
        assert!(valid_queue_name("default"));
        assert!(valid_queue_name("mail.high-1:x_y"));
        assert!(!valid_queue_name(""));
        assert!(!valid_queue_name("a b"));
        assert!(!valid_queue_name("a/b"));
        assert!(!valid_queue_name("キュー"));
    }
}
