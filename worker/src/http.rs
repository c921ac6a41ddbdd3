//! The worker's own HTTP endpoints on `METRICS_PORT`: `/metrics` (Prometheus),
//! `/health/live` (the loops are turning; no dependency checks, so a Redis outage never
//! restarts pods) and `/health/ready` (503 when Redis is unreachable or the process is
//! quiet, paused by the `mail_delivery_paused` flag, or stopping).

use crate::busy::Busy;
use crate::control::Control;
use crate::flags::Pause;
use crate::health::Health;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service_runtime::prometheus::{self, escape};
use service_runtime::redis_link::RedisLink;
use service_runtime::usage::ProcessUsage;
use sidekiq_wire::overview;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the endpoints report on.
#[derive(Clone)]
pub struct Probe {
    /// Shared Redis connection (readiness ping, queue gauges).
    pub redis: RedisLink,
    /// Whether the loops turn.
    pub health: Arc<Health>,
    /// Quiet/stopping.
    pub control: Control,
    /// Running jobs.
    pub busy: Arc<Busy>,
    /// This process's metrics.
    pub metrics: Arc<Metrics>,
    /// The `mail_delivery_paused` flag.
    pub pause: Pause,
}

/// Serves until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, probe: Probe) {
    if let Err(e) = axum::serve(listener, router(probe)).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

/// The routes.
pub fn router(shared: Probe) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(shared)
}

async fn live(State(shared): State<Probe>) -> impl IntoResponse {
    let l = shared.health.liveness();
    let status = if l.is_alive() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if l.is_alive() { "ok" } else { "stalled" },
            "heartbeat_seconds_since_turn": l.heartbeat_secs,
            "fetch_seconds_since_turn": l.fetch_secs,
            "stall_after_seconds": crate::health::STALL_AFTER.as_secs(),
        })),
    )
}

async fn ready(State(shared): State<Probe>) -> impl IntoResponse {
    let t0 = Instant::now();
    let mut conn = shared.redis.clone();
    let ping = tokio::time::timeout(
        Duration::from_secs(1),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    let redis_ok = matches!(ping, Ok(Ok(_)));
    let took_ms = t0.elapsed().as_millis() as u64;
    let (quiet, stopping) = (shared.control.is_quiet(), shared.control.is_stopping());
    let paused = shared.pause.is_paused();
    let ok = redis_ok && !quiet && !stopping && !paused;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let state = if stopping {
        "stopping"
    } else if quiet {
        "quiet"
    } else if paused {
        "paused"
    } else if redis_ok {
        "ready"
    } else {
        "redis_unreachable"
    };
    (
        status,
        Json(json!({
            "status": state,
            "checks": {"redis": {"status": if redis_ok { "ok" } else { "error" }, "took_ms": took_ms}},
            "quiet": quiet,
            "paused": paused,
            "busy": shared.busy.len(),
        })),
    )
}

async fn metrics(State(shared): State<Probe>) -> impl IntoResponse {
    let mut out = String::with_capacity(8 * 1024);
    shared.metrics.render(&mut out);
    let usage = ProcessUsage::read();
    prometheus::single(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory.",
        usage.rss_kb * 1024,
    );
    prometheus::single(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "CPU time.",
        usage.cpu_secs,
    );
    // Queue-level numbers are the same on every pod: aggregate with max() in queries.
    let mut conn = shared.redis.clone();
    let cluster = tokio::time::timeout(Duration::from_secs(2), async {
        let queues = overview::queues(&mut conn).await?;
        let totals = overview::totals(&mut conn).await?;
        Ok::<_, redis::RedisError>((queues, totals))
    })
    .await;
    if let Ok(Ok((queues, totals))) = cluster {
        prometheus::header(
            &mut out,
            "sidekiq_queue_enqueued_jobs",
            "gauge",
            "Jobs waiting per queue.",
        );
        for q in &queues {
            let _ = writeln!(
                out,
                "sidekiq_queue_enqueued_jobs{{name=\"{}\"}} {}",
                escape(&q.name),
                q.size
            );
        }
        prometheus::header(
            &mut out,
            "sidekiq_queue_latency_seconds",
            "gauge",
            "Age of the oldest job per queue.",
        );
        for q in &queues {
            let _ = writeln!(
                out,
                "sidekiq_queue_latency_seconds{{name=\"{}\"}} {:.3}",
                escape(&q.name),
                q.latency_secs
            );
        }
        let enqueued: u64 = queues.iter().map(|q| q.size).sum();
        for (name, help, kind, v) in [
            (
                "sidekiq_enqueued_jobs",
                "Jobs waiting in all queues.",
                "gauge",
                enqueued,
            ),
            (
                "sidekiq_scheduled_jobs",
                "Jobs in the schedule set.",
                "gauge",
                totals.scheduled,
            ),
            (
                "sidekiq_retry_jobs",
                "Jobs in the retry set.",
                "gauge",
                totals.retries,
            ),
            (
                "sidekiq_dead_jobs",
                "Jobs in the dead set.",
                "gauge",
                totals.dead,
            ),
            (
                "sidekiq_processes",
                "Live Sidekiq processes.",
                "gauge",
                totals.processes,
            ),
            (
                "sidekiq_processed_jobs_total",
                "stat:processed (all processes).",
                "counter",
                totals.processed,
            ),
            (
                "sidekiq_failed_jobs_total",
                "stat:failed (all processes).",
                "counter",
                totals.failed,
            ),
        ] {
            prometheus::single(&mut out, name, kind, help, v);
        }
    }
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], out)
}
