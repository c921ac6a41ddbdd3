//! `/sidekiq` reverse-proxied to the stock Ruby Sidekiq Web (`SIDEKIQ_WEB_URL`), so
//! http://localhost:3000/sidekiq works as the seed's mounted `Sidekiq::Web` did.
//!
//! The path is kept (`/sidekiq/queues` → `$SIDEKIQ_WEB_URL/sidekiq/queues`) because Sidekiq
//! Web builds its links from `SCRIPT_NAME`. The browser's `Host` is kept too, since Rack
//! builds absolute redirect URLs from it; `X-Forwarded-*` are added. Cookies, `Set-Cookie`,
//! `Authorization`, bodies and redirects pass through untouched (only hop-by-hop headers are
//! dropped), so Sidekiq's own session and CSRF token work through the proxy.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body forwarded (Sidekiq's forms are tiny).
const MAX_BODY: usize = 1024 * 1024;
/// Longest wait for the upstream's response headers.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers meaningful for one connection only (RFC 9110 §7.6.1); never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The proxy: where to and a pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct SidekiqProxy {
    upstream: Arc<str>,
    client: Client<HttpConnector, Body>,
}

impl SidekiqProxy {
    /// A proxy to `upstream` (`http://host:port`, no trailing slash).
    pub fn new(upstream: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        SidekiqProxy {
            upstream: upstream.trim_end_matches('/').into(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn forward(&self, req: Request, peer: Option<SocketAddr>) -> Response {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/sidekiq", |p| p.as_str());
        let Ok(uri) = format!("{}{path}", self.upstream).parse::<Uri>() else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        strip_hop_by_hop(&mut parts.headers);
        let host = parts.headers.get(header::HOST).cloned();
        add_forwarded(&mut parts.headers, host.as_ref(), peer);
        parts.uri = uri;
        parts.version = axum::http::Version::HTTP_11;
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        let upstream_req = axum::http::Request::from_parts(
            parts,
            Body::new(limited.map_err(|e| std::io::Error::other(e.to_string()))),
        );
        let res = match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(upstream_req))
            .await
        {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, upstream = %self.upstream, "sidekiq web unreachable");
                return unavailable(
                    crate::i18n::JA.sidekiq_unreachable,
                    crate::i18n::EN.sidekiq_unreachable,
                );
            }
            Err(_) => {
                tracing::warn!(upstream = %self.upstream, "sidekiq web timed out");
                return unavailable(
                    crate::i18n::JA.sidekiq_unreachable,
                    crate::i18n::EN.sidekiq_unreachable,
                );
            }
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        self.relativise_location(&mut parts.headers);
        Response::from_parts(parts, Body::new(body))
    }

    /// A redirect to the upstream's own address would leave the proxy: make it a path.
    fn relativise_location(&self, headers: &mut axum::http::HeaderMap) {
        let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Some(rest) = loc.strip_prefix(&*self.upstream)
            && rest.starts_with('/')
            && let Ok(v) = HeaderValue::from_str(rest)
        {
            headers.insert(header::LOCATION, v);
        }
    }
}

fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

fn add_forwarded(
    headers: &mut axum::http::HeaderMap,
    host: Option<&HeaderValue>,
    peer: Option<SocketAddr>,
) {
    if let Some(h) = host
        && !headers.contains_key("x-forwarded-host")
    {
        headers.insert("x-forwarded-host", h.clone());
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if let Some(peer) = peer {
        let ip = peer.ip().to_string();
        let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", v);
        }
    }
}

fn unavailable(ja: &str, en: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>Sidekiq</title></head>\
         <body style=\"font-family:sans-serif;padding:2em\"><h1>503</h1><p>{ja}</p><p>{en}</p>\
         <p><a href=\"/\">← /</a></p></body></html>"
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Handler for `/sidekiq` and everything below it.
pub async fn handle(State(proxy): State<Option<SidekiqProxy>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match proxy {
        Some(p) => p.forward(req, peer).await,
        None => unavailable(
            crate::i18n::JA.sidekiq_not_configured,
            crate::i18n::EN.sidekiq_not_configured,
        ),
    }
}
