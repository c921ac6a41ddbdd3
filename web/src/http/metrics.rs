//! Prometheus metrics of the HTTP server: `http_requests_total{method,path,status}` and the
//! `http_request_duration_seconds{method,path}` histogram (the names the Argo Rollouts
//! analysis queries), labelled with the matched route so cardinality stays bounded.
//!
//! A few dozen lines instead of the `metrics` facade: the registry lives in the app state, so
//! each test's router has its own counters and nothing global is installed.

use crate::http::error::LoggedError;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(String, String, u16), u64>,
    durations: BTreeMap<(String, String), Histogram>,
}

/// The HTTP metrics of one app.
#[derive(Default, Clone)]
pub struct HttpMetrics {
    inner: Arc<Mutex<Registry>>,
}

impl HttpMetrics {
    /// Counts one finished request.
    pub fn observe(&self, method: &str, path: &str, status: u16, seconds: f64) {
        let Ok(mut r) = self.inner.lock() else {
            return;
        };
        *r.requests
            .entry((method.to_owned(), path.to_owned(), status))
            .or_default() += 1;
        let h = r
            .durations
            .entry((method.to_owned(), path.to_owned()))
            .or_default();
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        h.counts[slot] += 1;
        h.sum += seconds;
        h.count += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(r) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((method, path, status), n) in &r.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{}\",path=\"{}\",status=\"{status}\"}} {n}",
                label(method),
                label(path)
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds HTTP request latency by method and route.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for ((method, path), h) in &r.durations {
            let (m, p) = (label(method), label(path));
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{method=\"{m}\",path=\"{p}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{method=\"{m}\",path=\"{p}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{method=\"{m}\",path=\"{p}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{method=\"{m}\",path=\"{p}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times the request, counts it under its route template (`unmatched` for
/// 404s, so scanners cannot blow up the label set), and logs an unexpected error once.
pub async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    metrics.observe(
        &method,
        &path,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    if let Some(LoggedError(chain)) = res.extensions().get::<LoggedError>() {
        tracing::error!(error.cause_chain = %chain, status = res.status().as_u16(), "request failed");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = HttpMetrics::default();
        m.observe("GET", "/emails", 200, 0.003);
        m.observe("GET", "/emails", 200, 0.2);
        m.observe("POST", "/emails", 303, 20.0);
        let text = m.render();
        assert!(
            text.contains("http_requests_total{method=\"GET\",path=\"/emails\",status=\"200\"} 2")
        );
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",path=\"/emails\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",path=\"/emails\",le=\"0.25\"} 2"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"POST\",path=\"/emails\",le=\"10\"} 0"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"POST\",path=\"/emails\",le=\"+Inf\"} 1"
        ));
        assert!(
            text.contains("http_request_duration_seconds_count{method=\"GET\",path=\"/emails\"} 2")
        );
    }
}
