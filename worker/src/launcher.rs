//! Starting and stopping a worker process (Sidekiq's `launcher.rb`).
//!
//! Start: connect (waiting for Redis), beat once so the process owns its lists, give back
//! the lists of processes that are gone, then run the heartbeat, the recovery loop, the
//! poller and the manager's fetch loop. Quiet ends the fetch loop and the poller. Stop then
//! runs against one [`Deadline`]: running jobs get `SHUTDOWN_TIMEOUT`, the final writes
//! (pushing back unfinished jobs, leaving the Busy page) share the 10 s after it.

use crate::busy::Busy;
use crate::clock::Clock;
use crate::config::Settings;
use crate::control::{Control, Deadline, Signal};
use crate::flags::{Pause, PauseWatcher};
use crate::health::Health;
use crate::http::{self, Probe};
use crate::identity::Identity;
use crate::mailer::Mailer;
use crate::manager::Manager;
use crate::metrics::Metrics;
use crate::processor::Processor;
use crate::queues::QueueSet;
use crate::stats::Stats;
use crate::store::{self, heartbeat, recovery};
use crate::tasks::heartbeat::Heartbeat;
use crate::tasks::poller::Poller;
use crate::tasks::recovery::Recovery;
use anyhow::Context;
use service_runtime::redis_link::RedisLink;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A started worker.
pub struct Handle {
    identity: String,
    control: Control,
    busy: Arc<Busy>,
    clock: Clock,
    metrics_addr: SocketAddr,
    main: tokio::task::JoinHandle<()>,
}

/// Signals a worker from outside (OS signal handlers); cheap to clone.
#[derive(Clone)]
pub struct Remote {
    control: Control,
    busy: Arc<Busy>,
}

impl Remote {
    /// Does what a signal asks (the same table as the Web UI's signals).
    pub fn signal(&self, signal: Signal) {
        self.control.apply(signal, &self.busy);
    }
}

impl Handle {
    /// Does what a signal asks (the same table as the Web UI's signals).
    pub fn signal(&self, signal: Signal) {
        self.control.apply(signal, &self.busy);
    }

    /// A handle for signal handlers that outlives [`Handle::wait`].
    pub fn remote(&self) -> Remote {
        Remote {
            control: self.control.clone(),
            busy: self.busy.clone(),
        }
    }

    /// The process identity on the Busy page.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Where `/metrics` and the health endpoints listen.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Stop fetching (TSTP).
    pub fn quiet(&self) {
        self.signal(Signal::Quiet);
    }

    /// Graceful stop (TERM/INT).
    pub fn stop(&self) {
        self.signal(Signal::Stop);
    }

    /// The clock the worker uses (tests move it forward).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Waits until the worker has stopped.
    ///
    /// # Errors
    /// The worker's task panicked.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.main.await.context("worker task")
    }
}

/// Connects, announces the process and starts every task.
///
/// Redis not being reachable yet is not an error: the worker keeps retrying with backoff
/// (and reports not-ready), so a pod never crash-loops over a Redis restart.
///
/// # Errors
/// Configuration that cannot work (bad `MAIL_FROM`, TLS setup, an occupied metrics port, a
/// malformed `REDIS_URL`).
pub async fn start(settings: Settings, clock: Clock) -> anyhow::Result<Handle> {
    let mailer = Arc::new(Mailer::new(&settings)?);
    let listener = tokio::net::TcpListener::bind((settings.bind_addr, settings.metrics_port))
        .await
        .with_context(|| {
            format!(
                "binding BIND_ADDR {} METRICS_PORT {}",
                settings.bind_addr, settings.metrics_port
            )
        })?;
    let metrics_addr = listener.local_addr()?;
    let identity = Identity::new(&settings, clock.now())?;
    let queues = Arc::new(QueueSet::new(
        &identity.name,
        &settings.queues,
        settings.queue_mode,
    ));
    let redis = store::connect(&settings.redis_url)
        .await
        .with_context(|| format!("REDIS_URL {:?}", settings.redis_url))?;

    let (control, busy, health) = (
        Control::default(),
        Arc::new(Busy::default()),
        Arc::new(Health::default()),
    );
    let (stats, metrics) = (Arc::new(Stats::default()), Arc::new(Metrics::default()));
    metrics.set_concurrency(settings.concurrency);
    let processor = Arc::new(Processor::new(
        mailer,
        redis.clone(),
        clock.clone(),
        settings.job_timeout,
        stats.clone(),
        metrics.clone(),
        health.clone(),
    ));
    let pause = Pause::default();
    let pause_watcher = match &settings.flags {
        Some(flags) => Some(PauseWatcher {
            unleash: service_runtime::flags::Unleash::start(flags)
                .context("start the unleash client")?,
            pause: pause.clone(),
        }),
        None => None,
    };
    let manager = Manager::new(
        &settings.redis_url,
        redis.clone(),
        processor.clone(),
        busy.clone(),
        control.clone(),
        health.clone(),
        queues.clone(),
        settings.concurrency,
        settings.max_payload_bytes,
    )?
    .paused_by(pause.clone());
    tokio::spawn(http::serve(
        listener,
        Probe {
            redis: redis.clone(),
            health: health.clone(),
            control: control.clone(),
            busy: busy.clone(),
            metrics: metrics.clone(),
            pause: pause.clone(),
        },
    ));
    let registry = recovery::registry_entries(&identity.name, &queues);
    let (first_beat, _) = watch::channel(false);
    let tasks = Tasks {
        heartbeat: Heartbeat {
            redis: redis.clone(),
            identity: identity.clone(),
            registry: registry.clone(),
            concurrency: settings.concurrency,
            interval: settings.heartbeat_interval,
            busy: busy.clone(),
            control: control.clone(),
            health: health.clone(),
            stats: stats.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            first_beat,
            pause,
        },
        poller: Poller {
            redis: redis.clone(),
            identity: identity.name.clone(),
            interval: settings.poll_interval,
            control: control.clone(),
            clock: clock.clone(),
        },
        recovery: Recovery {
            redis: redis.clone(),
            identity: identity.name.clone(),
            interval: settings.recovery_interval,
            grace: settings.recovery_grace,
            heartbeat_interval: settings.heartbeat_interval,
            health: health.clone(),
            processor: processor.clone(),
            metrics,
            clock: clock.clone(),
        },
        pause_watcher,
    };
    let stop = StopSequence {
        redis,
        identity: identity.name.clone(),
        registry,
        stats,
        clock: clock.clone(),
        shutdown_timeout: settings.shutdown_timeout,
    };
    let main = tokio::spawn(run(tasks, manager, control.clone(), stop));
    tracing::info!(identity = %identity.name, %metrics_addr, concurrency = settings.concurrency, queues = ?settings.queues, "mail-worker started");
    Ok(Handle {
        identity: identity.name,
        control,
        busy,
        clock,
        metrics_addr,
        main,
    })
}

/// The background loops, before they start.
struct Tasks {
    heartbeat: Heartbeat,
    poller: Poller,
    recovery: Recovery,
    /// The `mail_delivery_paused` flag, when Unleash is configured.
    pause_watcher: Option<PauseWatcher>,
}

/// What the end of a stop needs.
struct StopSequence {
    redis: RedisLink,
    identity: String,
    registry: Vec<(String, String)>,
    stats: Arc<Stats>,
    clock: Clock,
    shutdown_timeout: Duration,
}

async fn run(tasks: Tasks, mut manager: Manager, control: Control, stop: StopSequence) {
    // Heartbeat first: a registry entry without a live heartbeat would be "recovered" by
    // another process the moment we put a job in it.
    let mut first_beat = tasks.heartbeat.first_beat.subscribe();
    let pause_watcher = tasks.pause_watcher.map(|w| tokio::spawn(w.run()));
    let heartbeat = tokio::spawn(tasks.heartbeat.run());
    tokio::select! {
        _ = first_beat.wait_for(|b| *b) => {}
        _ = control.stopped() => {}
    }
    tasks.recovery.recover_once().await;
    let recovery = tokio::spawn(tasks.recovery.run());
    let poller = tokio::spawn(tasks.poller.run());
    manager.run().await;
    control.stopped().await;
    let deadline = Deadline::starting_now(stop.shutdown_timeout);
    poller.abort();
    manager.stop(deadline).await;
    stop.give_back_own_lists(deadline).await;
    recovery.abort();
    if let Some(w) = pause_watcher {
        // Stops the Unleash client too (it goes with the watcher's last handle).
        w.abort();
    }
    heartbeat.abort();
    let _ = heartbeat.await;
    stop.leave_busy_page(deadline).await;
}

impl StopSequence {
    /// Anything still in our lists (a fetch that raced the stop) goes back to its queue.
    async fn give_back_own_lists(&self, deadline: Deadline) {
        let mut conn = self.redis.clone();
        let now = self.clock.now().to_score();
        let give_back = recovery::recover(&mut conn, &self.identity, true, now, Duration::ZERO);
        match tokio::time::timeout_at(deadline.end(), give_back).await {
            Ok(Ok(r)) if r.total() == 0 => {}
            Ok(Ok(r)) => {
                tracing::info!(
                    jobs = r.total(),
                    "pushed back jobs left in this process's lists"
                )
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not empty the in-progress lists; another process will recover them")
            }
            Err(_) => tracing::error!(
                "Redis unreachable: the in-progress lists stay for another process to recover"
            ),
        }
    }

    /// Final stats flush and leaving the Busy page, retried until the deadline.
    async fn leave_busy_page(&self, deadline: Deadline) {
        let clear = async {
            let mut delay = Duration::from_millis(100);
            loop {
                let pending = self.stats.take();
                let mut conn = self.redis.clone();
                let result = heartbeat::clear(
                    &mut conn,
                    &self.identity,
                    &self.registry,
                    &pending,
                    self.clock.now(),
                )
                .await;
                match result {
                    Ok(()) => return,
                    Err(e) => {
                        self.stats.restore(pending);
                        tracing::warn!(error = %e, "could not clear the heartbeat yet");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        };
        match tokio::time::timeout_at(deadline.end(), clear).await {
            Ok(()) => tracing::info!("mail-worker stopped"),
            Err(_) => {
                tracing::error!("stopped without clearing the heartbeat; it expires within 60 s")
            }
        }
    }
}
