//! The control loop that plays the HPA controller and metrics-server for the local workers.
//!
//! Every sync period (15 s divided by the time compression) it scrapes each worker's CPU from
//! `/proc` (or reads `LLEN` of the watched queue), runs one [`Hpa::sync`], asks the
//! supervisor to scale (new workers start; surplus ones get SIGTERM and finish their jobs),
//! and publishes the result under `mailworker:autoscaler` for the web's workers panel.
//!
//! Like the controller it counts only workers that are running: a worker still starting has
//! no metrics yet (it counts as 0 % when scaling up and 100 % when scaling down), one that
//! got SIGTERM is ignored.

use crate::config::AutoscaleSettings;
use crate::cpu::CpuMeter;
use crate::hpa::{Hpa, HpaSpec, Target, cpu_proposal, queue_proposal};
use crate::manifest;
use crate::supervisor::{Control, Phase, ReplicaInfo};
use anyhow::Context;
use mail_protocol::autoscaler::{AutoscalerState, Metric, WorkerUsage};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The service the autoscaler scales.
pub const SERVICE: &str = "worker";

/// The spec for `settings` (CPU HPA or KEDA's queue variant), compressed, and the watched
/// Redis list for the queue variant.
///
/// # Errors
/// The manifests cannot be read or used.
pub fn spec(settings: &AutoscaleSettings) -> anyhow::Result<(HpaSpec, Option<String>)> {
    let (spec, list) = match settings.metric {
        Metric::Cpu => (
            manifest::cpu_hpa(&settings.hpa, &settings.deployment)?,
            None,
        ),
        Metric::Queue => {
            let (spec, list) = manifest::keda_queue_hpa(&settings.scaled_object)?;
            (spec, Some(list))
        }
    };
    Ok((spec.compressed(settings.time_compression), list))
}

/// Runs until `cancel`; `observer` gets every published state, `verbose` logs every sync
/// (otherwise only scaling decisions).
///
/// # Errors
/// Unusable manifests, or the supervisor gone.
pub async fn run(
    settings: AutoscaleSettings,
    redis_url: String,
    control: mpsc::Sender<Control>,
    observer: Option<mpsc::UnboundedSender<AutoscalerState>>,
    verbose: bool,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (spec, list) = spec(&settings)?;
    let request_millicores = manifest::cpu_request_millicores(&settings.deployment)?;
    let client = redis::Client::open(redis_url.as_str()).context("REDIS_URL")?;
    // The default 500 ms response timeout is too tight on a machine the drill itself keeps busy.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(5)));
    let mut redis = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .context("connecting to Redis")?;
    let period = spec.sync_period;
    tracing::info!(
        "autoscaler: {} replicas {}–{}, scale-up window {}, scale-down window {}, sync every {} (time ×{})",
        match spec.target {
            Target::CpuUtilization {
                percent,
                request_millicores,
            } => format!("CPU target {percent}% of a {request_millicores}m request,"),
            Target::QueuePerReplica { average } => format!(
                "{} target {average} jobs per replica,",
                list.as_deref().unwrap_or("queue")
            ),
        },
        spec.min_replicas,
        spec.max_replicas,
        crate::supervisor::human(spec.scale_up.stabilization),
        crate::supervisor::human(spec.scale_down.stabilization),
        crate::supervisor::human(period),
        settings.time_compression
    );
    let mut hpa = Hpa::new(spec.clone());
    let mut meter = CpuMeter::default();
    let origin = Instant::now();
    let mut replicas: Option<u32> = None;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                // No autoscaler any more: the panel should say so now, not after the TTL.
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(mail_protocol::autoscaler::KEY).query_async(&mut redis).await;
                return Ok(());
            }
            _ = ticker.tick() => {}
        }
        let (reply, answer) = oneshot::channel();
        if control
            .send(Control::Snapshot {
                service: SERVICE.into(),
                reply,
            })
            .await
            .is_err()
        {
            return Ok(());
        }
        let Ok(workers) = answer.await else {
            return Ok(());
        };
        let current = *replicas.get_or_insert_with(|| {
            workers
                .iter()
                .filter(|w| w.phase != Phase::Terminating)
                .count() as u32
        });
        let counted: Vec<&ReplicaInfo> = workers
            .iter()
            .filter(|w| w.phase != Phase::Terminating)
            .collect();
        let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        let usage = meter.scrape(&pids);
        let usage_of = |w: &ReplicaInfo| {
            if w.phase == Phase::Running {
                usage.get(&w.pid).copied().flatten()
            } else {
                None
            }
        };
        let (proposal, metric_value, metric_target, backlog) = match spec.target {
            Target::CpuUtilization {
                percent,
                request_millicores,
            } => {
                let pods: Vec<Option<f64>> = counted.iter().map(|w| usage_of(w)).collect();
                let (proposal, utilization) =
                    cpu_proposal(current, &pods, request_millicores, percent, spec.tolerance);
                (proposal, utilization, percent, None)
            }
            Target::QueuePerReplica { average } => {
                let key = list.as_deref().unwrap_or("queue:default");
                let len: Option<u64> = redis::cmd("LLEN")
                    .arg(key)
                    .query_async(&mut redis)
                    .await
                    .ok();
                match len {
                    Some(len) => {
                        let running = counted.len() as u32;
                        let proposal =
                            queue_proposal(current, running, len as f64, average, spec.tolerance);
                        (
                            proposal,
                            Some(len as f64 / f64::from(running.max(1))),
                            average,
                            Some(len),
                        )
                    }
                    // No metric: the HPA leaves the count alone.
                    None => (current, None, average, None),
                }
            }
        };
        let decision = hpa.sync(origin.elapsed(), current, proposal);
        let state = AutoscalerState {
            updated_at: epoch_now(),
            metric: settings.metric,
            metric_value,
            metric_target,
            current_replicas: current,
            proposed_replicas: decision.proposal,
            desired_replicas: decision.desired,
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            reason: decision.reason.as_str().to_owned(),
            cpu_request_millicores: request_millicores,
            time_compression: settings.time_compression,
            sync_period_secs: period.as_secs_f64(),
            workers: workers
                .iter()
                .map(|w| {
                    let m = usage_of(w);
                    WorkerUsage {
                        name: w.name.clone(),
                        pid: w.pid,
                        identity: w.identity.clone(),
                        cpu_millicores: m,
                        cpu_percent_of_request: m.map(|m| m * 100.0 / request_millicores),
                        phase: w.phase.as_str().to_owned(),
                    }
                })
                .collect(),
        };
        let line = summary(&state, backlog);
        if decision.desired != current {
            tracing::info!(
                from = current,
                to = decision.desired,
                reason = decision.reason.as_str(),
                "HPA scales {current} → {}: {line}",
                decision.desired
            );
            if control
                .send(Control::Scale {
                    service: SERVICE.into(),
                    replicas: decision.desired,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            replicas = Some(decision.desired);
        } else if verbose {
            tracing::info!("HPA keeps {current}: {line}");
        }
        if let Err(e) = state.store(&mut redis).await {
            tracing::warn!(error = %e, "cannot publish the autoscaler state");
        }
        if let Some(observer) = &observer {
            let _ = observer.send(state);
        }
    }
}

/// `cpu 182% of 100m (target 70%), proposes 6 (ScaleUpLimit); worker-1 190m, worker-2 …`
fn summary(state: &AutoscalerState, backlog: Option<u64>) -> String {
    let metric = match (state.metric, state.metric_value) {
        (Metric::Cpu, Some(v)) => format!(
            "cpu {v:.0}% of {:.0}m (target {:.0}%)",
            state.cpu_request_millicores, state.metric_target
        ),
        (Metric::Cpu, None) => "cpu: no sample yet".to_owned(),
        (Metric::Queue, Some(v)) => format!(
            "queue {} jobs, {v:.0} per replica (target {:.0})",
            backlog.unwrap_or(0),
            state.metric_target
        ),
        (Metric::Queue, None) => "queue length unavailable".to_owned(),
    };
    let workers: Vec<String> = state
        .workers
        .iter()
        .map(|w| match (w.cpu_millicores, w.phase.as_str()) {
            (Some(m), "running") => format!("{} {m:.0}m", w.name),
            (_, phase) => format!("{} {phase}", w.name),
        })
        .collect();
    format!(
        "{metric}, proposes {} ({}); {}",
        state.proposed_replicas,
        state.reason,
        workers.join(", ")
    )
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
