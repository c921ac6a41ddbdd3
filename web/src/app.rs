//! The running server: bind, serve with graceful shutdown, and the background sampler.

use crate::config::Config;
use crate::state::AppState;
use anyhow::Context;
use axum::extract::FromRef;
use std::future::{Future, IntoFuture};
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
    /// Opens the database, compiles templates and binds `0.0.0.0:PORT` (port 0 picks one).
    ///
    /// # Errors
    /// Database, template or bind failures.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let addr = SocketAddr::from(([0, 0, 0, 0], config.port));
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
    /// finish.
    ///
    /// # Errors
    /// Accept-loop I/O errors.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let sources = crate::services::live::LiveSources::from_ref(&self.state);
        let sampler = tokio::spawn(sources.sample_throughput(stop.clone()));
        let router = crate::router(self.state);
        tracing::info!(
            port = self.listener.local_addr().map_or(0, |a| a.port()),
            "mail-web listening"
        );
        let signalled = CancellationToken::new();
        let on_signal = signalled.clone();
        let serve = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            on_signal.cancel();
        })
        .into_future();
        // Draining waits for open requests; a stuck one (a slow proxied Sidekiq page) must
        // not keep the pod past its termination grace period.
        let result = tokio::select! {
            r = serve => r,
            () = async {
                signalled.cancelled().await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => {
                tracing::warn!(timeout_secs = DRAIN_TIMEOUT.as_secs(), "requests still open after the drain timeout; exiting");
                Ok(())
            }
        };
        stop.cancel();
        let _ = sampler.await;
        result.context("serve")
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
