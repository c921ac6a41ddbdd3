//! Optional HTTP basic auth (`WEB_USERNAME`/`WEB_PASSWORD`) in front of everything except the
//! health endpoints (probes carry no credentials) and `/metrics` (scraped by Prometheus for
//! the Argo Rollouts analysis; it holds request counts only, no addresses).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use service_runtime::config::Secret;
use service_runtime::tokens::constant_time_eq;
use std::sync::Arc;

/// The expected `user:password`, if auth is on.
pub type Credentials = Option<Arc<(String, Secret)>>;

/// Whether a path is reachable without credentials.
fn is_public(path: &str) -> bool {
    path == "/metrics" || path == "/health" || path.starts_with("/health/")
}

/// Middleware: 401 with a `WWW-Authenticate` challenge unless the credentials match.
pub async fn require(State(creds): State<Credentials>, req: Request, next: Next) -> Response {
    let Some(creds) = creds else {
        return next.run(req).await;
    };
    if is_public(req.uri().path()) || matches(&req, &creds) {
        return next.run(req).await;
    }
    let mut res = (StatusCode::UNAUTHORIZED, "401 Unauthorized\n").into_response();
    res.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"mail-web\", charset=\"UTF-8\""),
    );
    res
}

fn matches(req: &Request, creds: &(String, Secret)) -> bool {
    let Some(given) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
    else {
        return false;
    };
    let expected = format!("{}:{}", creds.0, creds.1.expose());
    // Constant time: the length may leak, the content does not.
    constant_time_eq(&given, expected.as_bytes())
}
