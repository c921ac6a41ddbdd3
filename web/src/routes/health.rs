//! `/health` (the seed's JSON), `/health/live`, `/health/ready` and `/metrics`.
//!
//! `/health` always answers 200 with per-check results: the seed uses it as the liveness
//! probe too, and a Redis outage must not restart every web pod. `/health/ready` is the one
//! that answers 503 while SQLite or Redis is unusable, taking the pod out of the Service.
//! `/health` also says where the feature flags come from (`live`, `unreachable`,
//! `not_configured`); Unleash being away never makes the web unready.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::time::Instant;

struct Check {
    ok: bool,
    took_ms: f64,
    /// Why it failed, in a few words (no paths, no SQL).
    error: Option<&'static str>,
}

impl Check {
    fn json(&self) -> Value {
        match self.error {
            None => json!({ "status": word(self.ok), "took_ms": self.took_ms }),
            Some(e) => json!({ "status": word(self.ok), "took_ms": self.took_ms, "error": e }),
        }
    }
}

/// The database is the one migrated at start, still there, writable and readable.
async fn check_database(state: &AppState) -> Check {
    let start = Instant::now();
    let result = state.db.ping().await;
    Check {
        ok: result.is_ok(),
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
        error: result.err().map(|e| e.reason()),
    }
}

async fn check_redis(state: &AppState) -> Check {
    let start = Instant::now();
    let ok = state.redis.ping().await.is_ok();
    Check {
        ok,
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
        error: (!ok).then_some("redis is unreachable"),
    }
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

pub(super) async fn health(State(state): State<AppState>) -> Json<Value> {
    let (db, redis) = tokio::join!(check_database(&state), check_redis(&state));
    Json(json!({
        "status": if db.ok && redis.ok { "ok" } else { "degraded" },
        "version": state.config.version,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "checks": { "database": word(db.ok), "redis": word(redis.ok) },
        // Informational: without Unleash the flags take their defaults, nothing is degraded.
        "flags": state.flags.source(),
    }))
}

pub(super) async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (db, redis) = tokio::join!(check_database(&state), check_redis(&state));
    let ok = db.ok && redis.ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ok" } else { "unavailable" },
            "checks": { "database": db.json(), "redis": redis.json() },
        })),
    )
}

pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
