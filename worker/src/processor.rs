//! Runs one job to its end (Sidekiq's `processor.rb`): execute it in isolation, decide what
//! became of it, record that atomically with releasing the lease, count it.

use crate::clock::Clock;
use crate::decision::Decision;
use crate::health::Health;
use crate::jobs::{self, Failure, JobContext, Performed};
use crate::mailer::Mailer;
use crate::metrics::{Metrics, email_result};
use crate::retry;
use crate::stats::Stats;
use crate::store::fetch::Lease;
use crate::store::outcome::{self, Tracking};
use crate::store::recovery::POISON_PILL_LIMIT;
use crate::unreadable::{Unreadable, dead_entry_for_bytes, read_job};
use mail_protocol::MailSenderArgs;
use mail_protocol::job::CLASS as MAIL_CLASS;
use mail_protocol::keys as mailkeys;
use rand::Rng;
use service_runtime::redis_link::RedisLink;
use service_runtime::timeouts::timeout_tolerating_pauses;
use sidekiq_wire::{Job, Timestamp};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Poison pills buried per call.
const POISON_BATCH: isize = 100;

/// What processing one job came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// The job id (empty for a payload that is not a job).
    pub jid: String,
    /// The class as the Web UI shows it (`(malformed)` for a payload that is not a job).
    pub class: String,
    /// The queue it was fetched from.
    pub queue: String,
    /// What became of it.
    pub decision: Decision,
    /// Whether this process still held the lease and wrote the outcome (false: another
    /// process had recovered the job meanwhile; nothing was written).
    pub recorded: bool,
}

/// Everything needed to run jobs; shared by all slots.
pub struct Processor {
    ctx: JobContext,
    redis: RedisLink,
    clock: Clock,
    job_timeout: Duration,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Processor {
    /// A processor running handlers with `mailer` and `redis` by `clock`, each job for at
    /// most `job_timeout`.
    pub fn new(
        mailer: Arc<Mailer>,
        redis: RedisLink,
        clock: Clock,
        job_timeout: Duration,
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        Processor {
            ctx: JobContext {
                mailer,
                redis: redis.clone(),
                clock: clock.clone(),
            },
            redis,
            clock,
            job_timeout,
            stats,
            metrics,
            health,
        }
    }

    /// The clock jobs run by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs the leased job, records its outcome (retrying through Redis outages) and
    /// counts it.
    pub async fn process(&self, lease: &Lease, parsed: Result<Job, Unreadable>) -> Processed {
        let job = match parsed {
            Ok(job) => job,
            Err(e) => return self.reject_malformed(lease, &e).await,
        };
        let t0 = Instant::now();
        let class = job.display_class().to_owned();
        if let Some(enq) = job.enqueued_at() {
            self.metrics
                .latency(&lease.queue, self.clock.now().as_secs() - enq.as_secs());
        }
        let tracking = tracking_for(&job);
        let result = {
            let (ctx, job) = (self.ctx.clone(), job.clone());
            run_isolated(
                async move { jobs::perform(&ctx, &job).await },
                self.job_timeout,
            )
            .await
        };
        let secs = t0.elapsed().as_secs_f64();
        let now = self.clock.now();
        self.stats.record(
            &class,
            now.to_datetime(),
            (secs * 1000.0) as u64,
            result.is_err(),
        );
        self.metrics.job(
            &lease.queue,
            jobs::metrics_label(job.class()),
            secs,
            result.is_err(),
        );
        if tracking.is_some() {
            self.count_mail(&result, secs);
        }
        let decision = decide(&job, &lease.queue, &result, now, rand::rng().random());
        let recorded = self
            .record_until_done(lease, &decision, tracking.as_ref(), now)
            .await;
        let ms = (secs * 1000.0).round() as u64;
        match &result {
            Ok(_) => {
                tracing::info!(jid = %job.jid(), class = %class, queue = %lease.queue, duration_ms = ms, outcome = decision.name(), recorded, "job done")
            }
            Err(f) => {
                tracing::warn!(jid = %job.jid(), class = %class, queue = %lease.queue, duration_ms = ms, outcome = decision.name(), error_class = %f.class, error = %f.message, retry_count = ?job.retry_count(), recorded, "job failed")
            }
        }
        Processed {
            jid: job.jid().to_owned(),
            class,
            queue: lease.queue.clone(),
            decision,
            recorded,
        }
    }

    /// A payload that is not a job goes to the dead set, is not retried and not counted:
    /// malformed text as it is (as Ruby does), bytes that are not text inside an entry that
    /// says so and keeps them (base64), since a sorted-set member the Web UI cannot decode
    /// would say nothing.
    async fn reject_malformed(&self, lease: &Lease, e: &Unreadable) -> Processed {
        let now = self.clock.now();
        let payload = match (e, lease.text()) {
            (Unreadable::NotAJob(_), Ok(text)) => {
                tracing::error!(queue = %lease.queue, error = %e, payload = %truncate(text, 200), "malformed job moved to the dead set");
                text.to_owned()
            }
            _ => {
                tracing::error!(queue = %lease.queue, error = %e, "undecodable payload moved to the dead set (kept as base64)");
                dead_entry_for_bytes(&lease.payload, &lease.queue, now)
            }
        };
        let decision = Decision::Dead { payload };
        let recorded = self.record_until_done(lease, &decision, None, now).await;
        Processed {
            jid: String::new(),
            class: "(malformed)".into(),
            queue: lease.queue.clone(),
            decision,
            recorded,
        }
    }

    /// Moves waiting poison pills (jobs recovered from crashed processes too often) to the
    /// dead set, each with the reason and counted as failed. Returns how many.
    ///
    /// # Errors
    /// Redis errors reading the list (what is not buried yet waits for the next call).
    pub async fn bury_poisoned(&self) -> redis::RedisResult<usize> {
        let mut conn = self.redis.clone();
        let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(mailkeys::POISONED)
            .arg(0)
            .arg(POISON_BATCH - 1)
            .query_async(&mut conn)
            .await?;
        let mut buried = 0;
        for payload in items {
            let job = read_job(&payload);
            let queue = job
                .as_ref()
                .ok()
                .and_then(|j| j.queue())
                .unwrap_or("default")
                .to_owned();
            let lease = Lease {
                queue,
                list: mailkeys::POISONED.to_owned(),
                payload,
            };
            let processed = match job {
                Ok(job) => self.reject_poison(&lease, &job).await,
                Err(e) => self.reject_malformed(&lease, &e).await,
            };
            if processed.recorded {
                buried += 1;
            }
        }
        Ok(buried)
    }

    async fn reject_poison(&self, lease: &Lease, job: &Job) -> Processed {
        let now = self.clock.now();
        let failure = Failure {
            class: "PoisonPillError".into(),
            message: format!(
                "recovered from crashed processes more than {POISON_PILL_LIMIT} times: it is probably what crashes them, so it is kept here instead of run again"
            ),
            backtrace: vec!["mail-worker: reliable-fetch recovery".into()],
            permanent: true,
        };
        let decision = retry::plan_failure(job.clone(), &lease.queue, &failure, now, 0.0);
        let tracking = tracking_for(job);
        tracing::error!(jid = %job.jid(), class = %job.display_class(), queue = %lease.queue, "poison pill moved to the dead set");
        let recorded = self
            .record_until_done(lease, &decision, tracking.as_ref(), now)
            .await;
        Processed {
            jid: job.jid().to_owned(),
            class: job.display_class().to_owned(),
            queue: lease.queue.clone(),
            decision,
            recorded,
        }
    }

    /// Pushes a job that was not run back to its queue (the process is stopping). Returns
    /// whether the lease was still ours.
    pub async fn requeue(&self, lease: &Lease) -> bool {
        self.record_until_done(lease, &Decision::Requeue, None, self.clock.now())
            .await
    }

    fn count_mail(&self, result: &Result<Performed, Failure>, secs: f64) {
        match result {
            Ok(Performed::Delivered) => self.metrics.email(email_result::SENT, Some(secs)),
            Ok(Performed::AlreadyDelivered) => {
                self.metrics.email(email_result::DUPLICATE_SKIPPED, None)
            }
            Ok(Performed::Done) => {}
            Err(f) if f.permanent => self
                .metrics
                .email(email_result::PERMANENT_FAILURE, Some(secs)),
            Err(_) => self
                .metrics
                .email(email_result::TRANSIENT_FAILURE, Some(secs)),
        }
    }

    /// Records an outcome decided at `at`, retrying through Redis outages. Returns whether
    /// this process still held the lease.
    async fn record_until_done(
        &self,
        lease: &Lease,
        decision: &Decision,
        tracking: Option<&Tracking>,
        at: Timestamp,
    ) -> bool {
        let mut conn = self.redis.clone();
        let mut delay = Duration::from_millis(50);
        loop {
            match outcome::record(&mut conn, lease, decision, tracking, at.to_score()).await {
                Ok(held) => {
                    if !held {
                        tracing::warn!(queue = %lease.queue, "lease lost (job recovered by another process); outcome not written");
                    }
                    return held;
                }
                Err(e) => {
                    self.health.set_redis_ok(false);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not record a job outcome yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Whose delivery state and progress the outcome of `job` moves: only `MailSenderJob`s are
/// tracked.
fn tracking_for(job: &Job) -> Option<Tracking> {
    (job.class() == MAIL_CLASS).then(|| Tracking {
        jid: job.jid().to_owned(),
        send: MailSenderArgs::from_job(job).ok().and_then(|a| a.send_id()),
    })
}

/// What became of `job`, fetched from `queue`, after its handler returned `result` at `now`;
/// `jitter` is a uniform sample in `[0, 1)` for the retry backoff.
pub fn decide(
    job: &Job,
    queue: &str,
    result: &Result<Performed, Failure>,
    now: Timestamp,
    jitter: f64,
) -> Decision {
    match result {
        Ok(Performed::Delivered) => Decision::Delivered,
        Ok(Performed::AlreadyDelivered) => Decision::AlreadyDelivered,
        Ok(Performed::Done) => Decision::Done,
        Err(failure) => retry::plan_failure(job.clone(), queue, failure, now, jitter),
    }
}

/// Runs a job so that a panic or a timeout is an ordinary failure (retried like any other)
/// and never costs a worker slot. The job runs inside the caller's task, boxed (one
/// allocation instead of a second task per job: the bench measured the spawn's copies of
/// the job's state as a fifth of the worker's CPU), with its panics caught at each poll;
/// dropping the caller, or the timeout, drops the job.
pub async fn run_isolated<F>(job: F, timeout: Duration) -> Result<Performed, Failure>
where
    F: std::future::Future<Output = Result<Performed, Failure>> + Send + 'static,
{
    match timeout_tolerating_pauses(timeout, CatchUnwind(Box::pin(job))).await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(Failure {
            class: "Panic".into(),
            message: panic_message(panic.as_ref()),
            backtrace: vec!["mail-worker: job panicked".into()],
            permanent: false,
        }),
        Err(_) => Err(Failure {
            class: "JobTimeoutError".into(),
            message: format!("job ran longer than JOB_TIMEOUT ({timeout:?})"),
            backtrace: vec![],
            permanent: false,
        }),
    }
}

/// A boxed future whose panics are caught where it is polled. The job is never polled again
/// after a panic: the wrapper finishes with the panic's payload.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let job = self.0.as_mut();
        // Unwind safety: after a panic the job is dropped unpolled, and what it shares with
        // the worker (Redis links, the mailer's pool) is built to survive a dropped request.
        match std::panic::catch_unwind(AssertUnwindSafe(|| job.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_panicking_job_is_an_ordinary_retryable_failure() {
        let r = run_isolated(async { panic!("boom") }, Duration::from_secs(5)).await;
        let f = r.unwrap_err();
        assert_eq!(f.class, "Panic");
        assert_eq!(f.message, "boom");
        assert!(!f.permanent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_over_its_timeout_fails_and_is_stopped() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let r = run_isolated(
            async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(Performed::Done)
            },
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(r.unwrap_err().class, "JobTimeoutError");
        tokio::time::sleep(Duration::from_secs(7200)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the timed-out job was aborted, not left running"
        );
    }

    #[tokio::test]
    async fn a_successful_job_passes_through() {
        assert_eq!(
            run_isolated(async { Ok(Performed::Delivered) }, Duration::from_secs(1))
                .await
                .unwrap(),
            Performed::Delivered
        );
    }

    #[test]
    fn success_and_failure_each_map_to_one_decision() {
        let job = Job::new(
            MAIL_CLASS,
            vec![serde_json::json!({"to": "a@example.test"})],
        )
        .with_retry(sidekiq_wire::Retry::Max(3));
        let now = Timestamp::from_secs(1_800_000_000.0);
        assert_eq!(
            decide(&job, "default", &Ok(Performed::AlreadyDelivered), now, 0.0),
            Decision::AlreadyDelivered
        );
        let failure = Failure {
            class: "SmtpTransientError".into(),
            message: "451".into(),
            backtrace: vec![],
            permanent: false,
        };
        let Decision::Retry { at, .. } = decide(&job, "default", &Err(failure), now, 0.0) else {
            panic!("a first transient failure is retried")
        };
        assert_eq!(at.as_secs(), now.as_secs() + 15.0);
    }
}
