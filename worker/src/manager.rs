//! The fetch loop (Sidekiq's `manager.rb` with its fetcher): takes jobs while worker slots
//! are free, runs each on its own task through the [`Processor`], and at a stop waits for
//! them until the deadline, then aborts and pushes back what is left.

use crate::busy::Busy;
use crate::control::{Control, Deadline};
use crate::health::Health;
use crate::processor::Processor;
use crate::queues::QueueSet;
use crate::store::fetch::{self, Lease, MAX_BATCH};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use sidekiq_wire::Job;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// What the manager works with.
pub struct Manager {
    processor: Arc<Processor>,
    busy: Arc<Busy>,
    control: Control,
    health: Arc<Health>,
    queues: Arc<QueueSet>,
    fetcher: Fetcher,
    concurrency: usize,
    tracker: TaskTracker,
}

impl Manager {
    /// A manager running up to `concurrency` jobs at once from `queues`.
    ///
    /// # Errors
    /// A malformed Redis URL.
    pub fn new(
        redis_url: &str,
        processor: Arc<Processor>,
        busy: Arc<Busy>,
        control: Control,
        health: Arc<Health>,
        queues: Arc<QueueSet>,
        concurrency: usize,
    ) -> redis::RedisResult<Self> {
        Ok(Manager {
            fetcher: Fetcher::new(redis_url, queues.all().len())?,
            processor,
            busy,
            control,
            health,
            queues,
            concurrency,
            tracker: TaskTracker::new(),
        })
    }

    /// Fetches and starts jobs until the process is quiet.
    pub async fn run(&mut self) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut delay = Duration::from_millis(100);
        loop {
            self.health.tick();
            if self.control.is_quiet() {
                return;
            }
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = self.control.quieted() => return,
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            match self.fetcher.fetch(&self.queues, permits.len()).await {
                Ok(leases) => {
                    delay = Duration::from_millis(100);
                    self.health.set_redis_ok(true);
                    if self.control.is_quiet() {
                        // Fetched as the quiet began: straight back, as Ruby does.
                        for lease in leases {
                            self.processor.requeue(&lease).await;
                        }
                        return;
                    }
                    for (lease, permit) in leases.into_iter().zip(permits) {
                        self.spawn(lease, permit);
                    }
                }
                Err(e) => {
                    self.health.set_redis_ok(false);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "fetch failed; reconnecting");
                    self.fetcher.reset();
                    drop(permits);
                    if self.control.sleep_unless_quiet(delay).await {
                        return;
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn spawn(&self, lease: Lease, permit: OwnedSemaphorePermit) {
        let parsed = Job::parse(&lease.payload);
        let (class, jid) = parsed
            .as_ref()
            .map(|j| (j.display_class().to_owned(), j.jid().to_owned()))
            .unwrap_or_else(|_| ("(malformed)".into(), String::new()));
        let run_at = self.processor_clock_secs();
        let slot = self.busy.start(lease.clone(), run_at, class, jid);
        let (processor, busy) = (self.processor.clone(), self.busy.clone());
        let handle = self.tracker.spawn(async move {
            processor.process(&lease, parsed).await;
            busy.finish(slot);
            drop(permit);
        });
        self.busy.set_abort(slot, handle.abort_handle());
    }

    fn processor_clock_secs(&self) -> i64 {
        self.processor.clock().now().as_whole_secs()
    }

    /// Waits for the running jobs until `deadline.for_jobs()`; then aborts what is left and
    /// pushes it back to its queues, within what is left of the deadline. Whatever Redis
    /// does not take in time stays in the in-progress list, where recovery finds it.
    pub async fn stop(self, deadline: Deadline) {
        self.tracker.close();
        tracing::info!(busy = self.busy.len(), "stopping: waiting for running jobs");
        if tokio::time::timeout_at(deadline.for_jobs(), self.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        let leftovers = self.busy.abort_all();
        let _ = tokio::time::timeout_at(deadline.end(), self.tracker.wait()).await;
        tracing::warn!(
            jobs = leftovers.len(),
            "shutdown timeout: pushing unfinished jobs back to their queues"
        );
        let requeue_all = async {
            for lease in &leftovers {
                self.processor.requeue(lease).await;
            }
        };
        if tokio::time::timeout_at(deadline.end(), requeue_all)
            .await
            .is_err()
        {
            tracing::error!(
                "Redis unreachable: unfinished jobs stay in the in-progress list for recovery"
            );
        }
    }
}

/// The fetch side: a dedicated connection (blocking commands would stall a shared,
/// multiplexed one) with no response timeout (redis 1.x's 500 ms default would cut every
/// `BLMOVE` short).
struct Fetcher {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    block: Duration,
}

impl Fetcher {
    fn new(redis_url: &str, queue_count: usize) -> redis::RedisResult<Self> {
        // One queue can block for as long as Sidekiq's BRPOP (2 s). With several, a block
        // watches only one of them, so keep it short to bound the wait of the others.
        let block = if queue_count == 1 {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(500)
        };
        Ok(Fetcher {
            client: redis::Client::open(redis_url)?,
            conn: None,
            block,
        })
    }

    async fn conn(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(None)
                .set_connection_timeout(Some(Duration::from_secs(5)));
            self.conn = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        self.conn
            .as_mut()
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no connection")))
    }

    /// Drops the connection after an error so the next call reconnects.
    fn reset(&mut self) {
        self.conn = None;
    }

    /// Takes up to `max` jobs without waiting; if there are none, blocks on one queue
    /// (weighted pick, or the first in strict mode) for a short while.
    async fn fetch(&mut self, queues: &QueueSet, max: usize) -> redis::RedisResult<Vec<Lease>> {
        let max = max.clamp(1, MAX_BATCH);
        let choices: Vec<usize> = {
            let mut rng = rand::rng();
            (0..max).map(|_| queues.pick(&mut rng)).collect()
        };
        let block = self.block;
        let conn = self.conn().await?;
        let leases = fetch::take(conn, queues, &choices).await?;
        if !leases.is_empty() {
            return Ok(leases);
        }
        let first = choices.first().copied().unwrap_or(0);
        Ok(fetch::wait_for_one(conn, queues, first, block)
            .await?
            .into_iter()
            .collect())
    }
}
