//! The worker one step at a time, for tests and tools (zero2prod's `try_execute_task`).
//!
//! A [`Stepper`] runs nothing on its own: [`Stepper::process_one`] fetches one job, runs it,
//! records its outcome and says what happened; [`Stepper::enqueue_due`] is one pass of the
//! scheduled-job poller; [`Stepper::recover`] one pass of the recovery loop;
//! [`Stepper::flush_stats`] writes the counters a heartbeat would.
//! Each step uses the same store functions and processor as the running worker.

use crate::clock::Clock;
use crate::config::Settings;
use crate::health::Health;
use crate::identity::Identity;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::processor::{Processed, Processor};
use crate::queues::QueueSet;
use crate::stats::Stats;
use crate::store::fetch::SizeLimit;
use crate::store::progress::{self, Reconciled, Suspects};
use crate::store::recovery::{self, Recovered};
use crate::store::{self, fetch, schedule};
use anyhow::Context;
use mail_protocol::keys as mailkeys;
use service_runtime::redis_link::RedisLink;
use sidekiq_wire::keys;
use std::sync::Arc;
use std::time::Duration;

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A job was fetched and ran to its end.
    Processed(Processed),
    /// A job over `MAX_PAYLOAD_BYTES` went to the dead set unread.
    Oversized {
        /// Its queue.
        queue: String,
        /// Its size.
        bytes: usize,
    },
    /// Every queue was empty.
    QueueEmpty,
}

/// A worker driven step by step.
pub struct Stepper {
    processor: Processor,
    queues: QueueSet,
    redis: RedisLink,
    identity: Identity,
    stats: Arc<Stats>,
    clock: Clock,
    max_payload: usize,
}

impl Stepper {
    /// Connects to Redis (waiting for it) with the worker's settings.
    ///
    /// # Errors
    /// Settings that cannot work (bad `MAIL_FROM`, a malformed `REDIS_URL`).
    pub async fn connect(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let mailer = Arc::new(Mailer::new(settings)?);
        let identity = Identity::new(settings, clock.now())?;
        let queues = QueueSet::new(&identity.name, &settings.queues, settings.queue_mode);
        let redis = store::connect(&settings.redis_url)
            .await
            .with_context(|| format!("REDIS_URL {:?}", settings.redis_url))?;
        let stats = Arc::new(Stats::default());
        let processor = Processor::new(
            mailer,
            redis.clone(),
            clock.clone(),
            settings.job_timeout,
            stats.clone(),
            Arc::new(Metrics::default()),
            Arc::new(Health::default()),
        );
        Ok(Stepper {
            processor,
            queues,
            redis,
            identity,
            stats,
            clock,
            max_payload: settings.max_payload_bytes,
        })
    }

    /// Fetches one job (the queues tried in weighted order, as the worker does), runs it and
    /// records its outcome.
    ///
    /// # Errors
    /// Redis errors while fetching (recording retries until Redis takes it).
    pub async fn process_one(&self) -> redis::RedisResult<Step> {
        let mut conn = self.redis.clone();
        let first = self.queues.pick(&mut rand::rng());
        let limit = SizeLimit {
            max: self.max_payload,
            now: self.clock.now().to_score(),
        };
        let fetched = fetch::take(&mut conn, &self.queues, &[first], limit).await?;
        if let Some((queue, bytes)) = fetched.oversized.into_iter().next() {
            return Ok(Step::Oversized { queue, bytes });
        }
        let Some(lease) = fetched.leases.into_iter().next() else {
            return Ok(Step::QueueEmpty);
        };
        let parsed = crate::unreadable::read_job(&lease.payload);
        Ok(Step::Processed(
            self.processor.process(&lease, parsed).await,
        ))
    }

    /// Processes jobs until every queue is empty; returns what each step did, in order.
    ///
    /// # Errors
    /// Redis errors while fetching.
    pub async fn drain(&self) -> redis::RedisResult<Vec<Processed>> {
        let mut done = Vec::new();
        loop {
            match self.process_one().await? {
                Step::Processed(p) => done.push(p),
                Step::Oversized { .. } => {}
                Step::QueueEmpty => return Ok(done),
            }
        }
    }

    /// One pass of the poller: enqueues what is due in `retry` and `schedule` by this
    /// stepper's clock. Returns how many jobs were moved.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn enqueue_due(&self) -> redis::RedisResult<usize> {
        let mut conn = self.redis.clone();
        let mut moved = 0;
        for set in [keys::RETRY, keys::SCHEDULE] {
            let staging = mailkeys::staging(&self.identity.name, set);
            moved += schedule::enqueue_due(&mut conn, set, &staging, &self.clock).await?;
        }
        Ok(moved)
    }

    /// One recovery pass: takes the lists of processes whose heartbeat has expired (their
    /// queue jobs run again after `grace`, through `schedule`; none at zero) and moves poison
    /// pills to the dead set.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn recover(&self, grace: Duration) -> redis::RedisResult<Recovered> {
        let mut conn = self.redis.clone();
        let now = self.clock.now().to_score();
        let recovered =
            recovery::recover(&mut conn, &self.identity.name, false, now, grace).await?;
        self.processor.bury_poisoned().await?;
        Ok(recovered)
    }

    /// One pass of the progress reconciliation (if no process has done one within
    /// `interval`): retrying jobs removed from the Web UI count as failed, queued jobs
    /// deleted before they ran as cancelled, each after two passes that saw the same.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn reconcile(
        &self,
        interval: Duration,
        suspects: &mut Suspects,
    ) -> redis::RedisResult<Reconciled> {
        let mut conn = self.redis.clone();
        progress::reconcile(&mut conn, &self.identity.name, interval, suspects).await
    }

    /// Writes the stats counted so far (`stat:processed`, `stat:failed`, Metrics-page data),
    /// as a heartbeat does.
    ///
    /// # Errors
    /// Redis errors (the counts are kept for the next flush).
    pub async fn flush_stats(&self) -> redis::RedisResult<()> {
        let pending = self.stats.take();
        let mut pipe = redis::pipe();
        pipe.atomic();
        store::stats::add_flush(&mut pipe, &pending, self.clock.now().to_datetime());
        let mut conn = self.redis.clone();
        let result = pipe.query_async::<()>(&mut conn).await;
        if result.is_err() {
            self.stats.restore(pending);
        }
        result
    }

    /// The clock jobs run by (tests move it forward past a retry's backoff).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}
