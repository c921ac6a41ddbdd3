//! The heartbeat loop: every `HEARTBEAT_INTERVAL`, tell Redis (and so the Busy page) that
//! this process is alive, what it runs, how much memory and CPU it uses; flush the stats; and
//! act on a signal the Web UI left for it (`TSTP`, `TERM`, `TTIN`).

use crate::busy::Busy;
use crate::clock::Clock;
use crate::control::{Control, Signal};
use crate::flags::Pause;
use crate::health::Health;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::stats::Stats;
use crate::store::heartbeat::{self, Beat};
use service_runtime::redis_link::RedisLink;
use service_runtime::usage::{ProcessUsage, cpu_percent};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the heartbeat reads and writes.
pub struct Heartbeat {
    /// Shared Redis connection.
    pub redis: RedisLink,
    /// This process.
    pub identity: Identity,
    /// Reliable-fetch registry entries, re-written every beat.
    pub registry: Vec<(String, String)>,
    /// Worker slots (shown on the Busy page).
    pub concurrency: usize,
    /// Time between beats.
    pub interval: Duration,
    /// The running jobs.
    pub busy: Arc<Busy>,
    /// Quiet/stop, and where Web UI signals go.
    pub control: Control,
    /// Liveness and Redis reachability.
    pub health: Arc<Health>,
    /// Stats to flush.
    pub stats: Arc<Stats>,
    /// The busy gauge.
    pub metrics: Arc<Metrics>,
    /// The worker's clock.
    pub clock: Clock,
    /// Set once the first beat went through.
    pub first_beat: watch::Sender<bool>,
    /// The `mail_delivery_paused` flag: a paused process shows as quiet on the Busy page.
    pub pause: Pause,
}

impl Heartbeat {
    /// Beats until the task is aborted; backs off while Redis is unreachable.
    pub async fn run(self) {
        let mut prev = (Instant::now(), ProcessUsage::read().cpu_secs);
        let mut delay = Duration::from_millis(100);
        loop {
            let usage = ProcessUsage::read();
            let now = (Instant::now(), usage.cpu_secs);
            let cpu = cpu_percent(prev, now);
            prev = now;
            self.metrics.set_busy(self.busy.len());
            self.health.heartbeat_turned();
            let wait = match self.beat(cpu, usage).await {
                Ok(signal) => {
                    self.health.set_redis_ok(true);
                    self.first_beat.send_replace(true);
                    delay = Duration::from_millis(100);
                    if let Some(name) = signal {
                        self.on_signal(&name);
                    }
                    self.interval
                }
                Err(e) => {
                    self.health.set_redis_ok(false);
                    self.health.heartbeat_failed();
                    tracing::warn!(error = %e, "heartbeat failed; retrying");
                    delay = (delay * 2).min(self.interval);
                    delay
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn beat(&self, cpu: f64, usage: ProcessUsage) -> redis::RedisResult<Option<String>> {
        let pending = self.stats.take();
        let work = self.busy.work_entries();
        let beat = Beat {
            identity: &self.identity.name,
            info_json: &self.identity.info_json,
            work: &work,
            quiet: self.control.is_quiet() || self.pause.is_paused(),
            concurrency: self.concurrency,
            usage,
            cpu_percent: cpu,
            registry: &self.registry,
            stats: &pending,
            now: self.clock.now(),
        };
        let mut conn = self.redis.clone();
        let result = heartbeat::beat(&mut conn, &beat).await;
        if result.is_err() {
            self.stats.restore(pending);
        }
        result
    }

    fn on_signal(&self, name: &str) {
        match Signal::from_name(name) {
            Some(signal) => {
                tracing::info!(signal = name, "signal from the Web UI");
                self.control.apply(signal, &self.busy);
            }
            None => tracing::warn!(signal = name, "unknown signal ignored"),
        }
    }
}
