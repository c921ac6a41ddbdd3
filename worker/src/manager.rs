//! The fetch loop (Sidekiq's `manager.rb` with its fetcher): takes jobs while worker slots
//! are free, runs each on its own task through the [`Processor`], and at a stop waits for
//! them until the deadline, then aborts and pushes back what is left.

use crate::busy::Busy;
use crate::control::{Control, Deadline};
use crate::flags::Pause;
use crate::health::Health;
use crate::processor::Processor;
use crate::queues::QueueSet;
use crate::store::fetch::{self, Fetched, Lease, MAX_BATCH, SizeLimit};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use service_runtime::redis_link::RedisLink;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// How much longer than its block time a fetch may take before its connection is given up:
/// covers a slow Redis, not a dead one.
const FETCH_REPLY_MARGIN: Duration = Duration::from_secs(3);

/// What the manager works with.
pub struct Manager {
    processor: Arc<Processor>,
    redis: RedisLink,
    busy: Arc<Busy>,
    control: Control,
    health: Arc<Health>,
    queues: Arc<QueueSet>,
    fetcher: Fetcher,
    concurrency: usize,
    max_payload: usize,
    tracker: TaskTracker,
    /// The `mail_delivery_paused` flag: while set, nothing is fetched.
    pause: Pause,
}

impl Manager {
    /// A manager running up to `concurrency` jobs at once from `queues`.
    ///
    /// # Errors
    /// A malformed Redis URL.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one thing the loop needs"
    )]
    pub fn new(
        redis_url: &str,
        redis: RedisLink,
        processor: Arc<Processor>,
        busy: Arc<Busy>,
        control: Control,
        health: Arc<Health>,
        queues: Arc<QueueSet>,
        concurrency: usize,
        max_payload: usize,
    ) -> redis::RedisResult<Self> {
        Ok(Manager {
            fetcher: Fetcher::new(redis_url, queues.all().len())?,
            redis,
            processor,
            busy,
            control,
            health,
            queues,
            concurrency,
            max_payload,
            tracker: TaskTracker::new(),
            pause: Pause::default(),
        })
    }

    /// Holds fetching while `pause` is set (the `mail_delivery_paused` flag).
    pub fn paused_by(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }

    /// Fetches and starts jobs until the process is quiet.
    pub async fn run(&mut self) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut delay = Duration::from_millis(100);
        // A failed fetch may have moved jobs into our lists whose reply never arrived: they
        // must go back before the next fetch, or nobody would ever run them while we live.
        let mut unclaimed_possible = false;
        let _stopped = StoppedOnDrop(&self.health);
        loop {
            self.health.fetch_turned();
            if self.control.is_quiet() {
                return;
            }
            // Paused by the flag: jobs stay queued; the loop keeps reporting itself alive.
            let health = &self.health;
            if self
                .pause
                .hold(self.control.quieted(), || health.fetch_turned())
                .await
            {
                return;
            }
            if unclaimed_possible {
                match self.give_back_unclaimed().await {
                    Ok(()) => unclaimed_possible = false,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not check the in-progress lists yet");
                        if self.control.sleep_unless_quiet(delay).await {
                            return;
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            // Waiting for a free slot is not a stall: jobs may run for JOB_TIMEOUT.
            self.health.fetch_waits_for_slot(true);
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = self.control.quieted() => return,
            };
            self.health.fetch_waits_for_slot(false);
            self.health.fetch_turned();
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let limit = SizeLimit {
                max: self.max_payload,
                now: self.processor.clock().now().to_score(),
            };
            match self.fetcher.fetch(&self.queues, permits.len(), limit).await {
                Ok(Fetched { leases, oversized }) => {
                    for (queue, bytes) in oversized {
                        tracing::error!(%queue, bytes, max = self.max_payload, "job over MAX_PAYLOAD_BYTES moved to the dead set unread");
                    }
                    delay = Duration::from_millis(100);
                    self.health.set_redis_ok(true);
                    if self.control.is_quiet() || self.pause.is_paused() {
                        // Fetched as the quiet (or a pause) began: straight back, as Ruby does.
                        for lease in leases {
                            self.processor.requeue(&lease).await;
                        }
                        if self.control.is_quiet() {
                            return;
                        }
                        continue;
                    }
                    for (lease, permit) in leases.into_iter().zip(permits) {
                        self.spawn(lease, permit);
                    }
                }
                Err(e) => {
                    self.health.set_redis_ok(false);
                    unclaimed_possible = true;
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

    async fn give_back_unclaimed(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        let running = self.busy.leases();
        let given = fetch::give_back_unclaimed(&mut conn, &self.queues, &running).await?;
        if given > 0 {
            tracing::warn!(
                jobs = given,
                "gave back jobs a failed fetch had moved into this process's lists"
            );
        }
        Ok(())
    }

    fn spawn(&self, lease: Lease, permit: OwnedSemaphorePermit) {
        let parsed = crate::unreadable::read_job(&lease.payload);
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

/// Tells health the fetch loop is over (quiet), however `run` returns.
struct StoppedOnDrop<'a>(&'a Health);

impl Drop for StoppedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_stopped();
    }
}

/// The fetch side: a dedicated connection (blocking commands would stall a shared,
/// multiplexed one) whose response timeout is the block time plus a margin, so a silent
/// partition is noticed (and the connection replaced) within seconds, not never.
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
                .set_response_timeout(Some(self.block + FETCH_REPLY_MARGIN))
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
    async fn fetch(
        &mut self,
        queues: &QueueSet,
        max: usize,
        limit: SizeLimit,
    ) -> redis::RedisResult<Fetched> {
        let max = max.clamp(1, MAX_BATCH);
        let choices: Vec<usize> = {
            let mut rng = rand::rng();
            (0..max).map(|_| queues.pick(&mut rng)).collect()
        };
        let block = self.block;
        let conn = self.conn().await?;
        let fetched = fetch::take(conn, queues, &choices, limit).await?;
        if !fetched.leases.is_empty() || !fetched.oversized.is_empty() {
            return Ok(fetched);
        }
        let first = choices.first().copied().unwrap_or(0);
        fetch::wait_for_one(conn, queues, first, block, limit).await
    }
}
