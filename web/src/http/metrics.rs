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
use service_runtime::prometheus::{self, DURATION_BUCKETS, Histogram, escape};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
        r.durations
            .entry((method.to_owned(), path.to_owned()))
            .or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(r) = self.inner.lock() else {
            return out;
        };
        prometheus::header(
            &mut out,
            "http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        for ((method, path, status), n) in &r.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{}\",path=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(path)
            );
        }
        prometheus::header(
            &mut out,
            "http_request_duration_seconds",
            "histogram",
            "HTTP request latency by method and route.",
        );
        for ((method, path), h) in &r.durations {
            let labels = format!("method=\"{}\",path=\"{}\"", escape(method), escape(path));
            h.render(&mut out, "http_request_duration_seconds", &labels);
        }
        out
    }
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
