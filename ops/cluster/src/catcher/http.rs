//! The catcher's web UI (port 1080, as MailCatcher's) and JSON API.
//!
//! - `GET /`: the newest messages, 100 per page, `?q=` filters by address or subject;
//! - `GET /messages/{id}`: one message (headers, the text part, the HTML part in a
//!   sandboxed frame), `/messages/{id}/html`, `/messages/{id}/source`;
//! - `GET /api/messages` (every index entry), `GET /api/stats` (`messages`, `recipients`,
//!   `duplicates`), `DELETE /api/messages` (a browser only sends DELETE same-origin);
//! - `GET /health`.
//!
//! Everything shown is HTML-escaped; pages carry a Content-Security-Policy, and a mail's own
//! HTML is served with `sandbox` so its scripts and links cannot act on this page.

use super::store::{Meta, Store};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use service_runtime::html::escape;
use std::fmt::Write as _;
use std::sync::Arc;

const PAGE: usize = 100;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-src 'self'; img-src data:";
const MAIL_CSP: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The routes, over `store`.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/html", get(message_html))
        .route("/messages/{id}/source", get(message_source))
        .route("/api/messages", get(api_messages).delete(api_clear))
        .route("/api/stats", get(api_stats))
        .route("/health", get(|| async { "ok" }))
        .with_state(store)
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;width:100%}}\
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}\
a{{color:#0b5cad}}pre{{white-space:pre-wrap;background:#f8f8f8;padding:8px}}iframe{{width:100%;height:480px;border:1px solid #ccc}}\
.muted{{color:#777}}form{{display:inline}}</style><script src=\"/app.js\" defer></script></head><body>{body}</body></html>",
        escape(title)
    );
    ([(header::CONTENT_SECURITY_POLICY, CSP)], Html(html)).into_response()
}

async fn script() -> Response {
    // The only script: the Delete-all button (DELETE cannot come from a cross-site form).
    const JS: &str = "document.addEventListener('click',async e=>{const b=e.target.closest('[data-clear]');\
if(!b)return;if(!confirm('Delete every caught message?'))return;\
await fetch('/api/messages',{method:'DELETE'});location.href='/';});";
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

fn when(epoch: f64) -> String {
    chrono::DateTime::from_timestamp(epoch as i64, ((epoch.fract()) * 1e9) as u32)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<usize>,
}

async fn index(State(store): State<Arc<Store>>, Query(query): Query<ListQuery>) -> Response {
    let stats = store.stats();
    let page_no = query.page.unwrap_or(1).max(1);
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let (rows, total) = store.list(q, (page_no - 1) * PAGE, PAGE);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>mail-catcher</h1><p>{} messages to {} recipients ({} duplicates). \
<a href=\"/\">refresh</a> · <button data-clear>Delete all</button></p>\
<form method=\"get\" action=\"/\"><input name=\"q\" value=\"{}\" placeholder=\"address or subject\"> <button>Search</button></form>",
        stats.messages,
        stats.recipients,
        stats.duplicates,
        escape(q.unwrap_or(""))
    );
    body.push_str("<table><tr><th>#</th><th>received</th><th>from</th><th>to</th><th>subject</th><th>size</th></tr>");
    for m in &rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/messages/{id}\">{}</a></td><td>{}</td></tr>",
            escape(&when(m.received_at)),
            escape(&m.sender),
            escape(&m.recipients.join(", ")),
            escape(if m.subject.is_empty() {
                "(no subject)"
            } else {
                &m.subject
            }),
            m.size,
            id = m.id,
        );
    }
    body.push_str("</table>");
    if rows.is_empty() {
        body.push_str("<p class=\"muted\">No mail yet.</p>");
    }
    let pages = total.div_ceil(PAGE).max(1);
    if pages > 1 {
        let link = |n: usize| {
            let mut href = format!("/?page={n}");
            if let Some(q) = q {
                href.push_str("&q=");
                href.push_str(&percent_encode(q));
            }
            escape(&href)
        };
        let _ = write!(body, "<p>page {page_no} of {pages} ");
        if page_no > 1 {
            let _ = write!(body, "<a href=\"{}\">newer</a> ", link(page_no - 1));
        }
        if page_no < pages {
            let _ = write!(body, "<a href=\"{}\">older</a>", link(page_no + 1));
        }
        body.push_str("</p>");
    }
    page("mail-catcher", &body)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such message").into_response()
}

async fn message(State(store): State<Arc<Store>>, Path(id): Path<u64>) -> Response {
    let Some((meta, raw)) = store.get(id) else {
        return not_found();
    };
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let text = parsed
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|t| t.into_owned());
    let has_html = parsed.as_ref().and_then(|m| m.body_html(0)).is_some()
        && parsed.as_ref().is_some_and(|m| m.html_body_count() > 0);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/\">← all mail</a></p><h1>{}</h1><table>{}</table>",
        escape(if meta.subject.is_empty() {
            "(no subject)"
        } else {
            &meta.subject
        }),
        header_rows(&meta)
    );
    if has_html {
        let _ = write!(
            body,
            "<h2>HTML</h2><iframe sandbox src=\"/messages/{id}/html\"></iframe>"
        );
    }
    if let Some(text) = text {
        let _ = write!(body, "<h2>Text</h2><pre>{}</pre>", escape(&text));
    }
    let _ = write!(body, "<p><a href=\"/messages/{id}/source\">source</a></p>");
    page(&meta.subject, &body)
}

fn header_rows(meta: &Meta) -> String {
    format!(
        "<tr><th>received</th><td>{}</td></tr><tr><th>from</th><td>{}</td></tr><tr><th>to</th><td>{}</td></tr><tr><th>size</th><td>{} bytes</td></tr>",
        escape(&when(meta.received_at)),
        escape(&meta.sender),
        escape(&meta.recipients.join(", ")),
        meta.size
    )
}

async fn message_html(State(store): State<Arc<Store>>, Path(id): Path<u64>) -> Response {
    let Some((_, raw)) = store.get(id) else {
        return not_found();
    };
    let html = mail_parser::MessageParser::default()
        .parse(&raw)
        .filter(|m| m.html_body_count() > 0)
        .and_then(|m| m.body_html(0).map(|h| h.into_owned()));
    match html {
        Some(html) => ([(header::CONTENT_SECURITY_POLICY, MAIL_CSP)], Html(html)).into_response(),
        None => not_found(),
    }
}

async fn message_source(State(store): State<Arc<Store>>, Path(id): Path<u64>) -> Response {
    let Some((_, raw)) = store.get(id) else {
        return not_found();
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], raw).into_response()
}

async fn api_messages(State(store): State<Arc<Store>>) -> Response {
    axum::Json(store.all()).into_response()
}

async fn api_stats(State(store): State<Arc<Store>>) -> Response {
    axum::Json(store.stats()).into_response()
}

async fn api_clear(State(store): State<Arc<Store>>) -> Response {
    match store.clear() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not delete every message: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
