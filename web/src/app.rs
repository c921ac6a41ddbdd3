//! The running server: bind, serve with graceful shutdown, and the background sampler.

use crate::config::Config;
use crate::http::server::{HEADER_TIMEOUT, Limits, serve};
use crate::state::AppState;
use anyhow::Context;
use axum::extract::FromRef;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Longest wait for open requests after SIGTERM (Kubernetes waits 30 s by default).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A bound, not yet serving, web app.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Opens the database, compiles templates and binds `BIND_ADDR:PORT` (port 0 picks one).
    ///
    /// # Errors
    /// Database, template or bind failures.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let state = AppState::new(config)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        Ok(App { listener, state })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (at most [`DRAIN_TIMEOUT`]: a stuck request must not keep the pod past its
    /// termination grace period).
    ///
    /// # Errors
    /// None today; kept fallible for the binary's `?`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let sources = crate::services::live::LiveSources::from_ref(&self.state);
        let sampler = tokio::spawn(sources.sample_throughput(stop.clone()));
        let limits = Limits {
            max_connections: self.state.config.max_connections,
            header_timeout: HEADER_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
        };
        let router = crate::router(self.state);
        tracing::info!(
            addr = %self.listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            "mail-web listening"
        );
        let on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            on_signal.cancel();
        });
        serve(self.listener, router, limits, stop.clone()).await;
        stop.cancel();
        let _ = sampler.await;
        Ok(())
    }
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
