//! Serving the router over TCP: HTTP/1.1 connections with a deadline for each request's
//! headers, a connection limit, and a graceful drain.
//!
//! `axum::serve` sets no timer, so hyper applies no header timeout: a client that trickles
//! its headers (or opens a connection and says nothing, or idles between keep-alive
//! requests) holds a connection and its task forever, and enough of them exhaust file
//! descriptors and memory. Here:
//! - the headers of every request must arrive within [`HEADER_TIMEOUT`] of the connection
//!   becoming ready for them; hyper starts that clock when it begins waiting for a request,
//!   so it is also the idle timeout of a keep-alive connection;
//! - the body and the handler are bounded by the router's request timeout;
//! - at most `MAX_CONNECTIONS` connections are open; one more is answered `503` at once and
//!   closed, so a flood costs a refusal, not a stuck probe;
//! - on shutdown, accepting stops and open connections finish their current request (up to
//!   the drain timeout).

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest wait for a request's headers, and so for the next request on an idle connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers); more is answered 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long the refusal of a connection over the limit may take to write.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// The refusal: a complete response, so a client sees why instead of a reset.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 1\r\n\
Content-Length: 32\r\n\r\ntoo many connections, try again\n";

/// How a listener serves.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// Longest wait for open requests after shutdown begins.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    let service = TowerToHyperService::new(router);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached; refusing connections"
                );
                last_refusal_log = Some(Instant::now());
            }
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header timeouts, resets and malformed requests end up here: the client's
                // doing, not ours.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = limits.drain_timeout.as_secs(),
            "requests still open after the drain timeout; exiting"
        );
    }
}

/// Answers 503 and closes, without reading the request.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
