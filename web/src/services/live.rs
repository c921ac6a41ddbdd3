//! The live panel: bulk-send progress merged from Redis, worker processes from the Sidekiq
//! heartbeats (stale ones marked, CPU also in millicores and % of request), the local
//! autoscaler's decision, queue sizes and latency, totals, and the throughput sparkline.
//!
//! Built for the first page render, the `/progress` fragment the page polls every second,
//! and `/mail_jobs.json`, from exactly three sources ([`LiveSources`]): the database, the
//! Sidekiq Redis and the throughput samples.

use crate::domain::autoscaling::{self, AutoscalerView};
use crate::domain::experiment::{self, ArmResult};
use crate::domain::mail_job::{self, MailJob};
use crate::flags::Flags;
use crate::services::throughput::{self, Throughput};
use crate::state::AppState;
use crate::storage::db::{Db, DbError};
use crate::storage::mail_jobs;
use crate::storage::sidekiq::SidekiqRedis;
use axum::extract::FromRef;
use mail_protocol::SendId;
use mail_protocol::autoscaler::AutoscalerState;
use serde::Serialize;
use service_runtime::flags::FlagSource;
use sidekiq_wire::overview::{QueueSummary, Totals};
use sidekiq_wire::process::ProcessSnapshot;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Bulk sends shown in the history (the seed shows 10).
pub const HISTORY: usize = 10;
/// Recent bulk sends the A/B results are computed over.
pub const EXPERIMENT_WINDOW: usize = 100;

/// One worker process, as the panel shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// Host (pod) name.
    pub hostname: String,
    /// OS pid.
    pub pid: u32,
    /// Sidekiq tag.
    pub tag: String,
    /// Jobs running.
    pub busy: i64,
    /// Slots.
    pub concurrency: i64,
    /// Resident memory in MB.
    pub rss_mb: f64,
    /// CPU in percent of one core, if reported.
    pub cpu_percent: Option<f64>,
    /// The same in millicores (what `kubectl top pod` shows).
    pub cpu_millicores: Option<f64>,
    /// The same in percent of the worker's CPU request (what `kubectl get hpa` shows), when
    /// an autoscaler publishes the request.
    pub cpu_percent_of_request: Option<f64>,
    /// Seconds since the last heartbeat.
    pub beat_age_secs: i64,
    /// No heartbeat for over 15 s: stuck, cut off or gone.
    pub stale: bool,
    /// Quieted.
    pub quiet: bool,
    /// The autoscaler's phase for it (`starting`, `running`, `terminating`), if it runs it.
    pub phase: Option<String>,
}

impl Process {
    fn from_snapshot(p: ProcessSnapshot, now: f64, scaler: Option<&AutoscalerState>) -> Self {
        let beat_age_secs = (now - p.beat).max(0.0).round() as i64;
        let cpu_millicores = p.cpu_percent.map(autoscaling::millicores);
        let usage = scaler.and_then(|s| {
            s.workers
                .iter()
                .find(|w| autoscaling::same_worker(w, &p.identity, &p.info.hostname, p.info.pid))
        });
        Process {
            cpu_percent_of_request: cpu_millicores
                .zip(scaler)
                .and_then(|(m, s)| autoscaling::percent_of_request(m, s.cpu_request_millicores)),
            phase: usage.map(|u| u.phase.clone()),
            hostname: p.info.hostname,
            pid: p.info.pid,
            tag: p.info.tag,
            busy: p.busy,
            concurrency: p.concurrency,
            rss_mb: p.rss_kb as f64 / 1024.0,
            cpu_percent: p.cpu_percent,
            cpu_millicores,
            beat_age_secs,
            stale: autoscaling::is_stale(beat_age_secs),
            quiet: p.quiet,
        }
    }
}

/// Queue row.
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    /// Name.
    pub name: String,
    /// Jobs waiting.
    pub size: u64,
    /// Age of the oldest, seconds.
    pub latency_secs: f64,
}

impl From<QueueSummary> for Queue {
    fn from(q: QueueSummary) -> Self {
        Queue {
            name: q.name,
            size: q.size,
            latency_secs: q.latency_secs,
        }
    }
}

/// Dashboard totals.
#[derive(Debug, Clone, Serialize)]
pub struct TotalsView {
    /// `stat:processed`.
    pub processed: u64,
    /// `stat:failed`.
    pub failed: u64,
    /// Retry set size.
    pub retries: u64,
    /// Scheduled set size.
    pub scheduled: u64,
    /// Dead set size.
    pub dead: u64,
}

impl From<Totals> for TotalsView {
    fn from(t: Totals) -> Self {
        TotalsView {
            processed: t.processed,
            failed: t.failed,
            retries: t.retries,
            scheduled: t.scheduled,
            dead: t.dead,
        }
    }
}

/// Everything the live panel shows.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    /// Recent bulk sends with live counts.
    pub jobs: Vec<MailJob>,
    /// Whether Redis answered (else counts are the stored copies).
    pub redis_ok: bool,
    /// Live worker processes.
    pub processes: Vec<Process>,
    /// Queues.
    pub queues: Vec<Queue>,
    /// Totals, when Redis answered.
    pub totals: Option<TotalsView>,
    /// Inline SVG of the last minute's throughput.
    pub sparkline: String,
    /// The latest one-second rate.
    pub rate_now: f64,
    /// Where the flags come from (the banner shows unless live).
    pub flags: FlagSource,
    /// The A/B results over the last [`EXPERIMENT_WINDOW`] sends.
    pub experiment: Vec<ArmResult>,
    /// How many sends the results looked at (at most [`EXPERIMENT_WINDOW`]).
    pub experiment_sends: usize,
    /// The local autoscaler, when one runs.
    pub autoscaler: Option<AutoscalerView>,
}

/// What the live panel reads from.
#[derive(Clone)]
pub struct LiveSources {
    /// The stored bulk sends.
    pub db: Db,
    /// The worker's counters and heartbeats.
    pub redis: Arc<SidekiqRedis>,
    /// Mails-per-second samples.
    pub throughput: Arc<Throughput>,
    /// Whether the flags are live (for the banner).
    pub flags: Flags,
}

impl FromRef<AppState> for LiveSources {
    fn from_ref(s: &AppState) -> Self {
        LiveSources {
            db: s.db.clone(),
            redis: s.redis.clone(),
            throughput: s.throughput.clone(),
            flags: s.flags.clone(),
        }
    }
}

impl LiveSources {
    /// The most recent `limit` bulk sends with their live counters merged in; merged rows
    /// that changed state are written back. Returns whether Redis answered.
    ///
    /// # Errors
    /// Database errors (Redis errors only degrade to the stored copy).
    pub async fn mail_jobs(&self, limit: usize) -> Result<(Vec<MailJob>, bool), DbError> {
        let stored = self.db.call(move |c| mail_jobs::recent(c, limit)).await?;
        let ids: Vec<SendId> = stored.iter().map(|j| j.send_id.clone()).collect();
        let live = self.redis.progress_and_last_change(ids).await;
        let redis_ok = live.is_ok();
        let live = live.unwrap_or_default();
        let merged: Vec<MailJob> = stored
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (progress, last_change) = live.get(i).copied().unzip();
                mail_job::merge(s, progress, last_change.flatten())
            })
            .collect();
        let changed: Vec<MailJob> = stored
            .iter()
            .zip(&merged)
            .filter(|(s, m)| mail_job::needs_saving(s, m))
            .map(|(_, m)| m.clone())
            .collect();
        if !changed.is_empty() {
            self.db.call(move |c| mail_jobs::save(c, &changed)).await?;
        }
        Ok((merged, redis_ok))
    }

    /// The whole panel.
    ///
    /// # Errors
    /// Database errors.
    pub async fn snapshot(&self) -> Result<Live, DbError> {
        let (mut jobs, jobs_redis_ok) = self.mail_jobs(EXPERIMENT_WINDOW).await?;
        let experiment = experiment::results(&jobs);
        let experiment_sends = jobs.len();
        jobs.truncate(HISTORY);
        let flags = self.flags.source();
        let now = sidekiq_wire::Timestamp::now().as_secs();
        let dashboard = self.redis.dashboard().await;
        let rates = self.throughput.rates();
        let sparkline = throughput::sparkline_svg(&rates);
        let rate_now = rates.last().copied().unwrap_or(0.0);
        Ok(match dashboard {
            Ok(d) => {
                let scaler = d.autoscaler;
                let listed: Vec<(String, String, u32)> = d
                    .processes
                    .iter()
                    .map(|p| (p.identity.clone(), p.info.hostname.clone(), p.info.pid))
                    .collect();
                let processes: Vec<Process> = d
                    .processes
                    .into_iter()
                    .map(|p| Process::from_snapshot(p, now, scaler.as_ref()))
                    .collect();
                Live {
                    jobs,
                    redis_ok: jobs_redis_ok,
                    processes,
                    queues: d.queues.into_iter().map(Queue::from).collect(),
                    totals: Some(d.totals.into()),
                    sparkline,
                    rate_now,
                    flags,
                    experiment,
                    experiment_sends,
                    autoscaler: scaler.map(|s| {
                        AutoscalerView::new(s, now, |w| {
                            listed
                                .iter()
                                .any(|(id, host, pid)| autoscaling::same_worker(w, id, host, *pid))
                        })
                    }),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis unavailable for the live panel");
                Live {
                    jobs,
                    redis_ok: false,
                    processes: Vec::new(),
                    queues: Vec::new(),
                    totals: None,
                    sparkline,
                    rate_now,
                    flags,
                    experiment,
                    experiment_sends,
                    autoscaler: None,
                }
            }
        })
    }

    /// Samples, once a second until cancelled, how many mails the recent bulk sends have
    /// done (sent + failed, the worker's exact counters), so the sparkline shows mails per
    /// second as they happen. (`stat:processed` would lag: workers flush it with their
    /// heartbeat.)
    pub async fn sample_throughput(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(ids) = self
                .db
                .call(|c| {
                    Ok(mail_jobs::recent(c, HISTORY)?
                        .iter()
                        .map(|j| j.send_id.clone())
                        .collect::<Vec<SendId>>())
                })
                .await
            else {
                continue;
            };
            if let Ok(progress) = self.redis.progress(ids).await {
                let total: i64 = progress.iter().map(|p| p.sent + p.failed).sum();
                self.throughput.record(
                    sidekiq_wire::Timestamp::now().as_secs(),
                    u64::try_from(total).unwrap_or(0),
                );
            }
        }
    }
}
