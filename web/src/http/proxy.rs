//! The stock Ruby Sidekiq Web (`SIDEKIQ_WEB_URL`) reverse-proxied on an origin of its own.
//!
//! Why a separate origin. Sidekiq Web's pages are third-party HTML: 6.4 prints a dead job's
//! class name unescaped under a CSP that allows inline script, so anyone who can write to
//! Redis can put script on its Dead page. Served on mail-web's own origin that script could
//! read mail-web's pages (and their CSRF token) and press bulk-send. So mail-web serves the
//! admin from a second listener (`SIDEKIQ_ADMIN_PORT`, or a host of its own behind a proxy,
//! `SIDEKIQ_ADMIN_URL`); `/sidekiq` on mail-web's port redirects there (the seed's
//! http://localhost:3000/sidekiq keeps working). Script on the admin origin cannot read
//! mail-web's responses (cross-origin, no CORS), mail-web's cookies are HttpOnly, and
//! mail-web refuses form posts whose `Origin` is not its own (see [`super::csrf`]).
//! A `Content-Security-Policy: sandbox` on the proxied pages was tried first and does not
//! work: the sandboxed page gets an opaque origin, so its form posts carry no cookies and
//! `Sec-Fetch-Site: cross-site` (Sidekiq refuses them: no session, or 8.1's fetch-site
//! check), its `fetch` polling fails, and `localStorage` throws.
//!
//! Forwarding: the path is kept (`/sidekiq/queues` → `$SIDEKIQ_WEB_URL/sidekiq/queues`)
//! because Sidekiq Web builds its links from `SCRIPT_NAME`, and the browser's `Host` (the
//! admin origin) is kept so Rack builds redirects to it. Not forwarded: hop-by-hop headers,
//! the client's `X-Forwarded-*`/`Forwarded`/`X-Real-IP` (spoofable, and nothing upstream
//! needs them), mail-web's own basic-auth `Authorization` (when `WEB_USERNAME` is set those
//! are mail-web's credentials, not Sidekiq's), and mail-web's own cookies. Sidekiq's cookies,
//! bodies and redirects pass through, so its session and CSRF token work. The upstream's
//! answer, body included, must arrive within [`UPSTREAM_TIMEOUT`] and fit in
//! [`MAX_RESPONSE`].

use crate::http::cookies;
use crate::http::error::error_page;
use crate::http::session;
use crate::i18n::{EN, JA, LANG_COOKIE};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body forwarded (Sidekiq's forms are tiny).
const MAX_BODY: usize = 1024 * 1024;
/// Largest response taken from the upstream (its biggest pages and scripts are a few
/// hundred KB).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Longest wait for the upstream's whole answer, headers and body.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Client-supplied proxy headers; never forwarded.
const CLIENT_FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// The proxy: where to, whether `Authorization` is ours, and a pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct SidekiqProxy {
    upstream: Arc<str>,
    /// mail-web's basic auth is on: the `Authorization` header carries its credentials.
    own_authorization: bool,
    client: Client<HttpConnector, Body>,
}

/// Why the upstream's answer was not passed on.
enum Failure {
    Unreachable,
    TimedOut,
    TooLarge,
}

impl SidekiqProxy {
    /// A proxy to `upstream` (`http://host:port`, no trailing slash). `own_authorization`:
    /// mail-web's basic auth is on, so the browser's `Authorization` is not for Sidekiq.
    pub fn new(upstream: &str, own_authorization: bool) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        SidekiqProxy {
            upstream: upstream.trim_end_matches('/').into(),
            own_authorization,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn forward(&self, req: Request) -> Response {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/sidekiq", |p| p.as_str());
        let Ok(uri) = format!("{}{path}", self.upstream).parse::<Uri>() else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        strip_hop_by_hop(&mut parts.headers);
        for name in CLIENT_FORWARDING {
            parts.headers.remove(name);
        }
        if self.own_authorization {
            parts.headers.remove(header::AUTHORIZATION);
        }
        strip_own_cookies(&mut parts.headers);
        parts.uri = uri;
        parts.version = axum::http::Version::HTTP_11;
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        let upstream_req = axum::http::Request::from_parts(
            parts,
            Body::new(limited.map_err(|e| std::io::Error::other(e.to_string()))),
        );
        match tokio::time::timeout(UPSTREAM_TIMEOUT, self.fetch(upstream_req)).await {
            Ok(Ok(res)) => res,
            Ok(Err(Failure::Unreachable)) => unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                JA.sidekiq_unreachable,
                EN.sidekiq_unreachable,
            ),
            Ok(Err(Failure::TooLarge)) => {
                tracing::warn!(upstream = %self.upstream, limit = MAX_RESPONSE, "sidekiq web answer too large");
                unavailable(
                    StatusCode::BAD_GATEWAY,
                    JA.sidekiq_too_large,
                    EN.sidekiq_too_large,
                )
            }
            Ok(Err(Failure::TimedOut)) | Err(_) => {
                tracing::warn!(upstream = %self.upstream, timeout_secs = UPSTREAM_TIMEOUT.as_secs(), "sidekiq web timed out");
                unavailable(
                    StatusCode::GATEWAY_TIMEOUT,
                    JA.sidekiq_timed_out,
                    EN.sidekiq_timed_out,
                )
            }
        }
    }

    /// Sends the request and reads the whole answer (the caller bounds the time).
    async fn fetch(&self, req: axum::http::Request<Body>) -> Result<Response, Failure> {
        let res = self.client.request(req).await.map_err(|e| {
            tracing::warn!(error = %e, upstream = %self.upstream, "sidekiq web unreachable");
            Failure::Unreachable
        })?;
        let (mut parts, body) = res.into_parts();
        let body: Bytes = http_body_util::Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Failure::TooLarge
                } else {
                    Failure::TimedOut
                }
            })?
            .to_bytes();
        strip_hop_by_hop(&mut parts.headers);
        self.relativise_location(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        Ok(Response::from_parts(parts, Body::from(body)))
    }

    /// A redirect to the upstream's own address would leave the proxy: make it a path.
    fn relativise_location(&self, headers: &mut HeaderMap) {
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Removes mail-web's cookies (session, flash, language) from what goes upstream: cookies
/// ignore ports, so the browser sends them to the admin origin too.
fn strip_own_cookies(headers: &mut HeaderMap) {
    let own = [
        session::COOKIE,
        session::SECURE_COOKIE,
        crate::http::flash::COOKIE,
        LANG_COOKIE,
    ];
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !own.contains(&name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

fn unavailable(status: StatusCode, ja: &str, en: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        error_page(status, ja, en),
    )
        .into_response()
}

/// Handler for `/sidekiq` and everything below it on the admin origin.
pub async fn handle(State(proxy): State<Option<SidekiqProxy>>, req: Request) -> Response {
    match proxy {
        Some(p) => p.forward(req).await,
        None => not_configured(),
    }
}

/// The page shown when `SIDEKIQ_WEB_URL` is not set.
pub fn not_configured() -> Response {
    unavailable(
        StatusCode::SERVICE_UNAVAILABLE,
        JA.sidekiq_not_configured,
        EN.sidekiq_not_configured,
    )
}

/// Where the admin origin is, for the redirect from mail-web's `/sidekiq`.
#[derive(Debug, Clone)]
pub enum AdminOrigin {
    /// `SIDEKIQ_ADMIN_URL`: a public base URL (behind an ingress).
    Url(Arc<str>),
    /// The same host as mail-web, on this port.
    Port(u16),
}

impl AdminOrigin {
    /// The admin's URL for `path_and_query`, as reached from a request to mail-web with
    /// these headers; `None` without a usable `Host`.
    pub fn url_for(&self, headers: &HeaderMap, path_and_query: &str) -> Option<String> {
        match self {
            AdminOrigin::Url(base) => Some(format!("{base}{path_and_query}")),
            AdminOrigin::Port(port) => {
                let host = headers.get(header::HOST)?.to_str().ok()?;
                let scheme = if cookies::is_https(headers) {
                    "https"
                } else {
                    "http"
                };
                Some(format!(
                    "{scheme}://{}:{port}{path_and_query}",
                    host_without_port(host)?
                ))
            }
        }
    }
}

/// `localhost:3000` → `localhost`, `[::1]:3000` → `[::1]`; refuses anything that is not a
/// plain host (a `Host` header is client input and goes into a `Location`).
fn host_without_port(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:3000"));
        let port = AdminOrigin::Port(3001);
        assert_eq!(
            port.url_for(&h, "/sidekiq/morgue?x=1").as_deref(),
            Some("http://localhost:3001/sidekiq/morgue?x=1")
        );
        h.insert(header::HOST, HeaderValue::from_static("[::1]:3000"));
        assert_eq!(
            port.url_for(&h, "/sidekiq").as_deref(),
            Some("http://[::1]:3001/sidekiq")
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::HOST, HeaderValue::from_static("mail.example"));
        assert_eq!(
            port.url_for(&h, "/sidekiq").as_deref(),
            Some("https://mail.example:3001/sidekiq")
        );
        h.insert(header::HOST, HeaderValue::from_static("evil.example/x?"));
        assert_eq!(port.url_for(&h, "/sidekiq"), None);
        let url = AdminOrigin::Url("https://sidekiq.example".into());
        assert_eq!(
            url.url_for(&HeaderMap::new(), "/sidekiq/").as_deref(),
            Some("https://sidekiq.example/sidekiq/")
        );
    }

    #[test]
    fn own_cookies_stay_home() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("_mail_web_session=a.b; rack.session=xyz; lang=en"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("_mail_web_flash=f"),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "rack.session=xyz");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("_mail_web_session=a.b"),
        );
        strip_own_cookies(&mut h);
        assert!(h.get(header::COOKIE).is_none());
    }
}
