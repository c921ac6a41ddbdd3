//! Starting, running and stopping a worker process.
//!
//! Tasks: the fetch loop (takes jobs while slots are free), one task per running job, the
//! heartbeat, the scheduler, the orphan recovery and the HTTP endpoints. Quiet stops the
//! fetch loop and the scheduler; stop also waits up to `SHUTDOWN_TIMEOUT` for running jobs,
//! pushes the unfinished ones back to their queues, flushes stats and leaves `processes`.

use crate::clock::Clock;
use crate::config::Settings;
use crate::fetch::{self, Fetcher, Lease};
use crate::heartbeat::{self, ProcessUsage};
use crate::jobs::{self, JobContext, Performed};
use crate::mailer::Mailer;
use crate::metrics::{Metrics, email_result};
use crate::outcome::{self, Action, DeliveryState, Tracking};
use crate::retry::{self, Disposition, Failure};
use crate::stats::Stats;
use crate::{http, progress, scheduler};
use anyhow::Context;
use mail_protocol::job as mail;
use rand::Rng;
use redis::aio::ConnectionManager;
use sidekiq_wire::process::ProcessInfo;
use sidekiq_wire::{Job, JobError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

/// Time allowed after `SHUTDOWN_TIMEOUT` for the final Redis writes (requeues, heartbeat
/// removal), so a stop during a Redis outage still ends inside the pod's grace period.
const FINAL_WRITES_BUDGET: Duration = Duration::from_secs(5);

/// A job being executed, as the Busy page and the shutdown need it.
struct Running {
    lease: Lease,
    run_at: i64,
    class: String,
    jid: String,
    abort: Option<AbortHandle>,
}

/// State shared by all tasks of the process.
pub struct Shared {
    /// `hostname:pid:hex`, the hash key, `processes` member and `info.identity`.
    pub identity: String,
    /// The serialized `info`, written every beat.
    pub info_json: String,
    /// Settings.
    pub settings: Settings,
    /// Clock.
    pub clock: Clock,
    /// Shared, auto-reconnecting connection for everything but blocking fetches.
    pub redis: ConnectionManager,
    /// Sidekiq stats accumulator.
    pub stats: Stats,
    /// Prometheus metrics.
    pub metrics: Metrics,
    running: Mutex<HashMap<u64, Running>>,
    next_slot: AtomicU64,
    lists: Vec<(String, String)>,
    quiet: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    first_beat: watch::Sender<bool>,
    last_tick: AtomicI64,
    redis_ok: AtomicBool,
    started: Instant,
}

impl Shared {
    /// Whether fetching has stopped (quiet or stopping).
    pub fn is_quiet(&self) -> bool {
        *self.quiet.borrow()
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Stops fetching new jobs.
    pub fn set_quiet(&self) {
        self.quiet.send_replace(true);
    }

    /// Quiets and starts the shutdown.
    pub fn request_stop(&self) {
        self.set_quiet();
        self.stop.send_replace(true);
    }

    /// Sleeps `d`; returns `true` early if the process was quieted meanwhile.
    pub async fn sleep_unless_quiet(&self, d: Duration) -> bool {
        let mut rx = self.quiet.subscribe();
        if *rx.borrow_and_update() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_quiet(),
            _ = rx.wait_for(|q| *q) => true,
        }
    }

    /// (queue, in-progress list) pairs of this process.
    pub fn lists(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lists.iter().map(|(q, l)| (q.as_str(), l.as_str()))
    }

    /// Work-hash entries: slot id (base 36) ⇒ `{"queue","payload","run_at"}`.
    pub fn work_entries(&self) -> Vec<(String, String)> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .map(|(slot, r)| {
                let v = serde_json::json!({"queue": r.lease.queue, "payload": r.lease.payload, "run_at": r.run_at});
                (radix36(*slot), v.to_string())
            })
            .collect()
    }

    /// Jobs running now.
    pub fn busy(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Marks the event loop as alive (for `/health/live`).
    pub fn tick(&self) {
        self.last_tick
            .store(self.started.elapsed().as_secs() as i64, Ordering::Relaxed);
    }

    /// Seconds since a loop last ticked.
    pub fn since_tick(&self) -> i64 {
        self.started.elapsed().as_secs() as i64 - self.last_tick.load(Ordering::Relaxed)
    }

    /// Whether the last Redis round trip of a loop worked.
    pub fn redis_ok(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed)
    }

    fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Ordering::Relaxed);
    }

    fn log_running(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now().as_whole_secs();
        tracing::info!(busy = running.len(), "TTIN: running jobs follow");
        for r in running.values() {
            tracing::info!(jid = %r.jid, class = %r.class, queue = %r.lease.queue, running_secs = now - r.run_at, "TTIN: running job");
        }
    }
}

fn radix36(mut n: u64) -> String {
    let mut s = Vec::new();
    loop {
        s.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.iter().rev().collect()
}

/// A started worker.
pub struct Handle {
    shared: Arc<Shared>,
    metrics_addr: SocketAddr,
    main: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Quiet/stop/dump from outside (OS signal handlers), cheap to clone.
#[derive(Clone)]
pub struct Controls(Arc<Shared>);

impl Controls {
    /// Stop fetching (TSTP).
    pub fn quiet(&self) {
        tracing::info!("quiet: no new jobs will be fetched");
        self.0.set_quiet();
    }

    /// Graceful stop (TERM/INT).
    pub fn stop(&self) {
        tracing::info!("stop requested");
        self.0.request_stop();
    }

    /// Log the running jobs (TTIN).
    pub fn dump(&self) {
        self.0.log_running();
    }
}

impl Handle {
    /// Controls for signal handlers.
    pub fn controls(&self) -> Controls {
        Controls(self.shared.clone())
    }

    /// The process identity on the Busy page.
    pub fn identity(&self) -> &str {
        &self.shared.identity
    }

    /// Where `/metrics` and the health endpoints listen.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Stop fetching (TSTP).
    pub fn quiet(&self) {
        self.controls().quiet();
    }

    /// Graceful stop (TERM/INT).
    pub fn stop(&self) {
        self.controls().stop();
    }

    /// The clock the worker uses (tests move it forward).
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Waits until the worker has stopped.
    ///
    /// # Errors
    /// What made the worker stop abnormally.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.main.await.context("worker task")?
    }
}

/// Connects, announces the process and starts every task.
///
/// Redis not being reachable yet is not an error: the worker keeps retrying with backoff
/// (and reports not-ready), so a pod never crash-loops over a Redis restart.
///
/// # Errors
/// Configuration that cannot work (bad `MAIL_FROM`, TLS setup, an occupied metrics port).
pub async fn start(settings: Settings, clock: Clock) -> anyhow::Result<Handle> {
    let mailer = Arc::new(Mailer::new(&settings)?);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", settings.metrics_port))
        .await
        .with_context(|| format!("binding METRICS_PORT {}", settings.metrics_port))?;
    let metrics_addr = listener.local_addr()?;
    let pid = std::process::id();
    let suffix: [u8; 6] = rand::random();
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let identity = format!("{}:{pid}:{suffix}", settings.hostname);
    let started_at = clock.now();
    let mut info = ProcessInfo::new(
        &identity,
        &settings.hostname,
        pid,
        env!("CARGO_PKG_VERSION"),
        started_at.as_secs(),
    )
    .with_queues(settings.concurrency, &settings.queues, settings.queue_mode);
    info.tag = settings.tag.clone();
    info.labels.push("reliable-fetch".into());
    let info_json = serde_json::to_string(&info)?;

    let redis = connect_with_backoff(&settings.redis_url).await?;
    let fetcher = Fetcher::new(
        &settings.redis_url,
        &identity,
        &settings.queues,
        settings.queue_mode,
    )?;
    let lists = fetcher
        .lists()
        .map(|(q, l)| (q.to_owned(), l.to_owned()))
        .collect();
    let shared = Arc::new(Shared {
        identity,
        info_json,
        clock,
        redis: redis.clone(),
        stats: Stats::default(),
        metrics: Metrics::default(),
        running: Mutex::new(HashMap::new()),
        next_slot: AtomicU64::new(1),
        lists,
        quiet: watch::channel(false).0,
        stop: watch::channel(false).0,
        first_beat: watch::channel(false).0,
        last_tick: AtomicI64::new(0),
        redis_ok: AtomicBool::new(true),
        started: Instant::now(),
        settings,
    });
    shared.metrics.set_concurrency(shared.settings.concurrency);
    tokio::spawn(http::serve(listener, shared.clone()));
    let ctx = JobContext {
        mailer,
        redis,
        clock: shared.clock.clone(),
    };
    let main = tokio::spawn(run(shared.clone(), fetcher, ctx));
    tracing::info!(identity = %shared.identity, %metrics_addr, concurrency = shared.settings.concurrency, queues = ?shared.settings.queues, "mail-worker started");
    Ok(Handle {
        shared,
        metrics_addr,
        main,
    })
}

async fn connect_with_backoff(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("REDIS_URL {url:?}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let mut delay = Duration::from_millis(100);
    loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Redis not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn run(shared: Arc<Shared>, fetcher: Fetcher, ctx: JobContext) -> anyhow::Result<()> {
    // Heartbeat first: a registry entry without a live heartbeat would be "recovered" by
    // another process the moment we put a job in it.
    let hb = tokio::spawn(heartbeat_loop(shared.clone()));
    wait_for_first_beat(&shared).await;
    recover_once(&shared).await;
    let rec = tokio::spawn(recovery_loop(shared.clone()));
    let sched = tokio::spawn(scheduler::run(shared.clone()));
    let tracker = TaskTracker::new();
    fetch_loop(&shared, fetcher, &ctx, &tracker).await;
    let mut stop = shared.stop.subscribe();
    let _ = stop.wait_for(|s| *s).await;
    sched.abort();
    shutdown(&shared, &tracker).await;
    rec.abort();
    hb.abort();
    let _ = hb.await;
    let clear = async {
        let mut delay = Duration::from_millis(100);
        loop {
            match heartbeat::clear(&shared).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "could not clear the heartbeat yet"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    };
    match tokio::time::timeout(FINAL_WRITES_BUDGET, clear).await {
        Ok(()) => tracing::info!("mail-worker stopped"),
        Err(_) => tracing::error!("stopped without clearing the heartbeat; it expires within 60 s"),
    }
    Ok(())
}

async fn wait_for_first_beat(shared: &Shared) {
    let mut beat = shared.first_beat.subscribe();
    let mut stop = shared.stop.subscribe();
    tokio::select! {
        _ = beat.wait_for(|b| *b) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut prev = (Instant::now(), ProcessUsage::read().cpu_secs);
    let mut delay = Duration::from_millis(100);
    loop {
        let usage = ProcessUsage::read();
        let now = (Instant::now(), usage.cpu_secs);
        let cpu = heartbeat::cpu_percent(prev, now);
        prev = now;
        shared.metrics.set_busy(shared.busy());
        shared.tick();
        let wait = match heartbeat::beat(&shared, cpu, usage).await {
            Ok(signal) => {
                shared.set_redis_ok(true);
                shared.first_beat.send_replace(true);
                delay = Duration::from_millis(100);
                if let Some(sig) = signal {
                    handle_signal(&shared, &sig);
                }
                shared.settings.heartbeat_interval
            }
            Err(e) => {
                shared.set_redis_ok(false);
                tracing::warn!(error = %e, "heartbeat failed; retrying");
                delay = (delay * 2).min(shared.settings.heartbeat_interval);
                delay
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn handle_signal(shared: &Shared, sig: &str) {
    match sig {
        "TSTP" => {
            tracing::info!("TSTP from the Web UI: quiet");
            shared.set_quiet();
        }
        "TERM" | "INT" => {
            tracing::info!(signal = sig, "stop from the Web UI");
            shared.request_stop();
        }
        "TTIN" | "INFO" => shared.log_running(),
        other => tracing::warn!(signal = other, "unknown signal ignored"),
    }
}

async fn recover_once(shared: &Shared) {
    let mut conn = shared.redis.clone();
    match fetch::recover(
        &mut conn,
        &shared.identity,
        false,
        shared.clock.now().to_score(),
    )
    .await
    {
        Ok(n) => shared.metrics.recovered(n),
        Err(e) => tracing::warn!(error = %e, "orphan recovery failed; will retry"),
    }
}

/// Looks for crashed processes' jobs, and for retrying jobs the Web UI killed or deleted.
async fn recovery_loop(shared: Arc<Shared>) {
    let mut suspects = progress::Suspects::default();
    loop {
        let base = shared.settings.recovery_interval.as_secs_f64();
        let jitter = rand::rng().random_range(0.75..1.25);
        tokio::time::sleep(Duration::from_secs_f64((base * jitter).max(0.1))).await;
        recover_once(&shared).await;
        let mut conn = shared.redis.clone();
        match progress::reconcile(&mut conn, &mut suspects).await {
            Ok(lost) if !lost.is_empty() => {
                tracing::info!(jobs = lost.len(), jids = ?lost, "retrying jobs removed outside the worker (Web UI Kill/Delete) now count as failed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "progress reconciliation failed; will retry"),
        }
    }
}

async fn fetch_loop(
    shared: &Arc<Shared>,
    mut fetcher: Fetcher,
    ctx: &JobContext,
    tracker: &TaskTracker,
) {
    let sem = Arc::new(Semaphore::new(shared.settings.concurrency));
    let mut quiet = shared.quiet.subscribe();
    let mut delay = Duration::from_millis(100);
    loop {
        shared.tick();
        if shared.is_quiet() {
            return;
        }
        let first = tokio::select! {
            p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = quiet.wait_for(|q| *q) => return,
        };
        let mut permits = vec![first];
        while permits.len() < fetch::MAX_BATCH {
            match sem.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        match fetcher.fetch(permits.len()).await {
            Ok(leases) => {
                delay = Duration::from_millis(100);
                shared.set_redis_ok(true);
                if shared.is_quiet() {
                    // Fetched as the quiet began: straight back, as Ruby does.
                    for lease in leases {
                        record_until_done(shared, &lease, &Action::Requeue, None).await;
                    }
                    return;
                }
                for (lease, permit) in leases.into_iter().zip(permits) {
                    spawn_job(shared, ctx, tracker, lease, permit);
                }
            }
            Err(e) => {
                shared.set_redis_ok(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "fetch failed; reconnecting");
                fetcher.reset();
                drop(permits);
                if shared.sleep_unless_quiet(delay).await {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn spawn_job(
    shared: &Arc<Shared>,
    ctx: &JobContext,
    tracker: &TaskTracker,
    lease: Lease,
    permit: OwnedSemaphorePermit,
) {
    let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
    let parsed = Job::parse(&lease.payload);
    let (class, jid) = parsed
        .as_ref()
        .map(|j| (j.display_class().to_owned(), j.jid().to_owned()))
        .unwrap_or_else(|_| ("(malformed)".into(), String::new()));
    let running = Running {
        lease: lease.clone(),
        run_at: shared.clock.now().as_whole_secs(),
        class,
        jid,
        abort: None,
    };
    shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(slot, running);
    let (s, c) = (shared.clone(), ctx.clone());
    let handle = tracker.spawn(async move {
        execute(&s, &c, &lease, parsed).await;
        s.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&slot);
        drop(permit);
    });
    if let Some(r) = shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&slot)
    {
        r.abort = Some(handle.abort_handle());
    }
}

/// Aborts the job's own task when the executing task is aborted (shutdown deadline).
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn execute(shared: &Shared, ctx: &JobContext, lease: &Lease, parsed: Result<Job, JobError>) {
    let t0 = Instant::now();
    let job = match parsed {
        Ok(job) => job,
        Err(e) => {
            // Ruby: malformed JSON goes to the dead set raw, is not retried, not counted.
            tracing::error!(queue = %lease.queue, error = %e, payload = %truncate(&lease.payload, 200), "malformed job moved to the dead set");
            let action = Action::Dead {
                payload: lease.payload.clone(),
                score: shared.clock.now().to_score(),
            };
            record_until_done(shared, lease, &action, None).await;
            return;
        }
    };
    let class = job.display_class().to_owned();
    if let Some(enq) = job.enqueued_at() {
        shared
            .metrics
            .latency(&lease.queue, shared.clock.now().as_secs() - enq.as_secs());
    }
    let is_mail = job.class() == mail::CLASS;
    let send = if is_mail {
        mail::MailSenderArgs::from_job(&job)
            .ok()
            .and_then(|a| a.send_id())
    } else {
        None
    };

    let result = {
        let (ctx, job) = (ctx.clone(), job.clone());
        run_isolated(
            async move { jobs::perform(&ctx, &job).await },
            shared.settings.job_timeout,
        )
        .await
    };
    let secs = t0.elapsed().as_secs_f64();
    let now = shared.clock.now();
    let now_utc = now.to_datetime();
    shared
        .stats
        .record(&class, now_utc, (secs * 1000.0) as u64, result.is_err());
    shared
        .metrics
        .job(&lease.queue, &class, secs, result.is_err());

    let (action, state, outcome_name) = match &result {
        Ok(Performed::Delivered) => {
            shared.metrics.email(email_result::SENT, Some(secs));
            (Action::Ack, Some(DeliveryState::Sent), "delivered")
        }
        Ok(Performed::AlreadyDelivered) => {
            shared.metrics.email(email_result::DUPLICATE_SKIPPED, None);
            (Action::Ack, Some(DeliveryState::Sent), "already_delivered")
        }
        Ok(Performed::Done) => (Action::Ack, None, "done"),
        Err(failure) => {
            if is_mail {
                let r = if failure.permanent {
                    email_result::PERMANENT_FAILURE
                } else {
                    email_result::TRANSIENT_FAILURE
                };
                shared.metrics.email(r, Some(secs));
            }
            let jitter: f64 = rand::rng().random();
            match retry::plan_failure(job.clone(), &lease.queue, failure, now, jitter) {
                Disposition::Retry { at, payload } => (
                    Action::Retry {
                        payload,
                        score: at.to_score(),
                    },
                    Some(DeliveryState::Retrying),
                    "retry",
                ),
                Disposition::Dead { payload } => (
                    Action::Dead {
                        payload,
                        score: now.to_score(),
                    },
                    Some(DeliveryState::Dead),
                    "dead",
                ),
                Disposition::Discard => (Action::Ack, Some(DeliveryState::Dead), "discarded"),
            }
        }
    };
    let tracking = match (is_mail, state) {
        (true, Some(state)) => Some(Tracking {
            jid: job.jid().to_owned(),
            send,
            state,
        }),
        _ => None,
    };
    let recorded = record_until_done(shared, lease, &action, tracking.as_ref()).await;
    let ms = (secs * 1000.0).round() as u64;
    match &result {
        Ok(_) => {
            tracing::info!(jid = %job.jid(), class = %class, queue = %lease.queue, duration_ms = ms, outcome = outcome_name, recorded, "job done")
        }
        Err(f) => {
            tracing::warn!(jid = %job.jid(), class = %class, queue = %lease.queue, duration_ms = ms, outcome = outcome_name, error_class = %f.class, error = %f.message, retry_count = ?job.retry_count(), recorded, "job failed")
        }
    }
}

/// Runs a job on its own task, so that a panic or a timeout is an ordinary failure (retried
/// like any other) and never costs a worker slot. Aborting the caller aborts the job too.
pub async fn run_isolated<F>(job: F, timeout: Duration) -> Result<Performed, Failure>
where
    F: std::future::Future<Output = Result<Performed, Failure>> + Send + 'static,
{
    let inner = tokio::spawn(job);
    let _guard = AbortOnDrop(inner.abort_handle());
    match tokio::time::timeout(timeout, inner).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(Failure {
            class: if join.is_panic() {
                "Panic".into()
            } else {
                "Cancelled".into()
            },
            message: panic_message(join),
            backtrace: vec!["mail-worker: job task panicked".into()],
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

fn panic_message(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return "job task was cancelled".into();
    }
    let payload = join.into_panic();
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

/// Records an outcome, retrying through Redis outages. Returns whether this process still
/// held the lease (false: another process had recovered the job; nothing was written).
async fn record_until_done(
    shared: &Shared,
    lease: &Lease,
    action: &Action,
    tracking: Option<&Tracking>,
) -> bool {
    let mut conn = shared.redis.clone();
    let mut delay = Duration::from_millis(50);
    loop {
        match outcome::record(
            &mut conn,
            lease,
            action,
            tracking,
            shared.clock.now().to_score(),
        )
        .await
        {
            Ok(held) => {
                if !held {
                    tracing::warn!(queue = %lease.queue, "lease lost (job recovered by another process); outcome not written");
                }
                return held;
            }
            Err(e) => {
                shared.set_redis_ok(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not record a job outcome yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn shutdown(shared: &Arc<Shared>, tracker: &TaskTracker) {
    tracker.close();
    let busy = shared.busy();
    tracing::info!(
        busy,
        timeout_secs = shared.settings.shutdown_timeout.as_secs_f64(),
        "stopping: waiting for running jobs"
    );
    if tokio::time::timeout(shared.settings.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        let leftovers: Vec<Lease> = {
            let running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
            for r in running.values() {
                if let Some(a) = &r.abort {
                    a.abort();
                }
            }
            running.values().map(|r| r.lease.clone()).collect()
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        tracing::warn!(
            jobs = leftovers.len(),
            "shutdown timeout: pushing unfinished jobs back to their queues"
        );
        // One budget for all of them: the pod's grace period is running out. Whatever Redis
        // does not take in time stays in the in-progress list, where recovery finds it.
        let requeue_all = async {
            for lease in &leftovers {
                record_until_done(shared, lease, &Action::Requeue, None).await;
            }
        };
        if tokio::time::timeout(FINAL_WRITES_BUDGET, requeue_all)
            .await
            .is_err()
        {
            tracing::error!(
                "Redis unreachable: unfinished jobs stay in the in-progress list for recovery"
            );
        }
        shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    // Anything still in our lists (a fetch that raced the stop) goes back too.
    let mut conn = shared.redis.clone();
    match fetch::recover(
        &mut conn,
        &shared.identity,
        true,
        shared.clock.now().to_score(),
    )
    .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "pushed back jobs left in this process's lists"),
        Err(e) => {
            tracing::error!(error = %e, "could not empty the in-progress lists; another process will recover them")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn slot_ids_are_base36() {
        assert_eq!(radix36(0), "0");
        assert_eq!(radix36(35), "z");
        assert_eq!(radix36(36), "10");
    }
}
