//! `ops/autoscale-drill`: the HPA lesson, run end to end on this machine.
//!
//! It starts a private cluster under `<run>/drill` (Redis, the mail catcher with an SMTP
//! latency, one worker with a per-mail CPU cost), lets the autoscaler watch it, pushes one
//! burst of `MailSenderJob`s, and waits until every mail is delivered **and** the workers
//! are scaled back to `minReplicas`. Then it stops everything in order and counts at the
//! SMTP side, ending with one line:
//!
//! `autoscale-drill: max replicas N, final replicas M, delivered X/Y, lost L, duplicates D`
//!
//! Exit status 0 when it scaled to at least 3 and back to 1 with nothing lost or doubled.

use crate::catcher::Store;
use crate::cluster::{Endpoints, mail_catcher, redis, report_stop, stop_signal, workers};
use crate::config::DrillSettings;
use crate::logs::LogSink;
use crate::supervisor::{Control, Supervisor, human};
use anyhow::Context;
use mail_protocol::MailSenderArgs;
use mail_protocol::autoscaler::AutoscalerState;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The replica count the drill must reach to pass.
pub const MIN_PEAK: u32 = 3;

/// What the drill saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The most replicas at once.
    pub max_replicas: u32,
    /// Replicas when it ended.
    pub final_replicas: u32,
    /// Distinct recipients that got their mail.
    pub delivered: u64,
    /// Mails pushed.
    pub pushed: u64,
    /// Mails beyond the first per recipient.
    pub duplicates: u64,
}

impl Outcome {
    /// Pushed but never delivered.
    pub fn lost(&self) -> u64 {
        self.pushed.saturating_sub(self.delivered)
    }

    /// Scaled to [`MIN_PEAK`] or more and back to `min_replicas`, nothing lost or doubled.
    pub fn passed(&self, min_replicas: u32) -> bool {
        self.max_replicas >= MIN_PEAK
            && self.final_replicas == min_replicas
            && self.lost() == 0
            && self.duplicates == 0
    }

    /// The drill's last line.
    pub fn line(&self) -> String {
        format!(
            "autoscale-drill: max replicas {}, final replicas {}, delivered {}/{}, lost {}, duplicates {}",
            self.max_replicas,
            self.final_replicas,
            self.delivered,
            self.pushed,
            self.lost(),
            self.duplicates
        )
    }
}

/// Runs the drill; returns the process exit status.
///
/// # Errors
/// The private cluster cannot be set up (directories, Redis, manifests).
pub async fn run(s: DrillSettings) -> anyhow::Result<i32> {
    let run_dir = s.paths.run_dir.clone();
    // A drill always starts empty: old mail would count as duplicates.
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("emptying {}", run_dir.display()))?;
    }
    for sub in ["logs", "redis", "mail"] {
        std::fs::create_dir_all(run_dir.join(sub))?;
    }
    let logs = LogSink::open(&run_dir.join("logs"))?;
    let json_log = std::fs::File::create(logs.path("autoscale-drill"))?;
    crate::telemetry::init("autoscale-drill", Some(json_log));
    let (spec, _) = crate::autoscaler::spec(&s.autoscale)?;
    // The drill runs no Unleash; its ports in the plan stay unused.
    let e = Endpoints::pick(&crate::config::PortPlan::from_base(s.port_base));
    let cpu_ms = s.cpu_ms.to_string();
    let services = vec![
        redis(&run_dir, e.redis),
        mail_catcher(&s.paths.bin_dir, &run_dir, &e, Some(s.latency_ms)),
        workers(
            &s.paths.bin_dir,
            &e,
            &s.worker,
            spec.min_replicas,
            &[("MAIL_CPU_MS", &cpu_ms)],
        ),
    ];
    tracing::info!(
        "drill: {} mails, {} ms CPU each (MAIL_CPU_MS), {} ms SMTP latency, WORKER_CONCURRENCY={}, logs in {}",
        s.mails,
        s.cpu_ms,
        s.latency_ms,
        s.concurrency,
        logs.dir().display()
    );
    let mut supervisor = Supervisor::new(services, logs);
    if let Err(err) = supervisor.start().await {
        tracing::error!("{err}");
        report_stop(&supervisor.stop().await);
        return Ok(1);
    }
    tracing::info!(
        "mail catcher UI: http://127.0.0.1:{} (the drill's mail is in {})",
        e.mail_ui,
        run_dir.join("mail").display()
    );

    let (control_tx, control_rx) = mpsc::channel::<Control>(16);
    let (states_tx, mut states) = mpsc::unbounded_channel::<AutoscalerState>();
    let cancel = CancellationToken::new();
    let autoscaler = tokio::spawn(crate::autoscaler::run(
        s.autoscale.clone(),
        e.redis_url(),
        control_tx,
        Some(states_tx),
        true,
        cancel.clone(),
    ));
    let stop = cancel.clone();
    let cluster = tokio::spawn(supervisor.run(control_rx, async move { stop.cancelled().await }));

    // Let the autoscaler see an idle worker first, as a real HPA would have.
    tokio::time::sleep(spec.sync_period * 2).await;
    let pushed = push_burst(&e.redis_url(), s.mails).await?;
    tracing::info!("pushed {pushed} MailSenderJobs to queue:default");

    let store_dir = run_dir.join("mail");
    let started = Instant::now();
    let deadline = started + s.timeout;
    let mut max_replicas = 0;
    let mut last: Option<AutoscalerState> = None;
    let mut drained_at: Option<Instant> = None;
    let interrupted = stop_signal();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = &mut interrupted => { tracing::warn!("interrupted"); break; }
            state = states.recv() => match state {
                Some(state) => {
                    // Worker processes that were running (not finishing after SIGTERM) at this sync.
                    let live = state.workers.iter().filter(|w| w.phase != "terminating").count() as u32;
                    max_replicas = max_replicas.max(live);
                    last = Some(state);
                }
                None => break,
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let delivered = Store::open(&store_dir)
            .map(|st| st.stats().recipients)
            .unwrap_or(0);
        if drained_at.is_none() && delivered >= u64::from(pushed) {
            drained_at = Some(Instant::now());
            tracing::info!(
                "all {pushed} mails delivered after {}; waiting for the scale-down",
                human(started.elapsed())
            );
        }
        let settled = last.as_ref().is_some_and(|st| {
            st.current_replicas == spec.min_replicas
                && st.desired_replicas == spec.min_replicas
                && st.workers.iter().all(|w| w.phase != "terminating")
        });
        if drained_at.is_some() && settled && max_replicas > spec.min_replicas {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!("timed out after {}", human(s.timeout));
            break;
        }
    }
    let final_replicas = last
        .as_ref()
        .map_or(0, |st| st.current_replicas.min(st.desired_replicas));
    cancel.cancel();
    let _ = autoscaler.await;
    let stopped = cluster.await.unwrap_or_default();
    report_stop(&stopped);
    let stats = Store::open(&store_dir)
        .map(|st| st.stats())
        .context("reading the caught mail")?;
    let outcome = Outcome {
        max_replicas,
        final_replicas,
        delivered: stats.recipients,
        pushed: u64::from(pushed),
        duplicates: stats.duplicates,
    };
    if let Some(at) = drained_at {
        tracing::info!(
            "backlog drained in {}, back to {} replica(s) {} later; total {}",
            human(at.duration_since(started)),
            final_replicas,
            human(at.elapsed()),
            human(started.elapsed())
        );
    }
    println!("{}", outcome.line());
    Ok(if outcome.passed(spec.min_replicas) {
        0
    } else {
        1
    })
}

/// Pushes `n` jobs with distinct recipients `drill-00001@example.test`, … in one bulk.
async fn push_burst(redis_url: &str, n: u32) -> anyhow::Result<u32> {
    let client = sidekiq_wire::client::Client::connect(redis_url)
        .await
        .context("connecting to the drill's Redis")?;
    let jobs = (1..=n)
        .map(|i| {
            MailSenderArgs {
                to: format!("drill-{i:05}@example.test"),
                name: Some(format!("Drill {i}")),
                email_id: None,
                mail_job_id: None,
                instance: None,
                simulate_error: false,
            }
            .into_job(mail_protocol::job::DEFAULT_QUEUE)
        })
        .collect();
    let jids = client.push_bulk(jobs).await.context("push_bulk")?;
    Ok(jids.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_and_the_verdict() {
        let o = Outcome {
            max_replicas: 6,
            final_replicas: 1,
            delivered: 20_000,
            pushed: 20_000,
            duplicates: 0,
        };
        assert_eq!(
            o.line(),
            "autoscale-drill: max replicas 6, final replicas 1, delivered 20000/20000, lost 0, duplicates 0"
        );
        assert!(o.passed(1));
        assert!(
            !Outcome {
                max_replicas: 2,
                ..o
            }
            .passed(1)
        );
        assert!(
            !Outcome {
                final_replicas: 2,
                ..o
            }
            .passed(1)
        );
        assert!(
            !Outcome {
                delivered: 19_999,
                ..o
            }
            .passed(1)
        );
        assert!(!Outcome { duplicates: 1, ..o }.passed(1));
    }
}
