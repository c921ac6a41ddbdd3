//! The running server: bind, serve with graceful shutdown, and the background tasks (the
//! throughput sampler, the lesson guide's watcher).

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
    /// The Sidekiq admin's own origin, when `SIDEKIQ_WEB_URL` is set.
    admin_listener: Option<TcpListener>,
    state: AppState,
}

impl App {
    /// Opens the database, compiles templates and binds `BIND_ADDR:PORT`, and with
    /// `SIDEKIQ_WEB_URL` also `BIND_ADDR:SIDEKIQ_ADMIN_PORT` (port 0 picks one).
    ///
    /// # Errors
    /// Database, template or bind failures.
    pub async fn build(mut config: Config) -> anyhow::Result<App> {
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        let admin_listener = match config.sidekiq_web_url {
            Some(_) => {
                let addr = SocketAddr::new(config.bind_addr, config.sidekiq_admin_port);
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind {addr} (SIDEKIQ_ADMIN_PORT)"))?;
                // The redirect names the port really bound.
                config.sidekiq_admin_port = l.local_addr()?.port();
                Some(l)
            }
            None => None,
        };
        let state = AppState::new(config)?;
        Ok(App {
            listener,
            admin_listener,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// The admin origin's bound port, when there is one.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (at most 20 s: a stuck request must not keep the pod past its
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
        let lesson = crate::services::lesson::LessonSources::from_ref(&self.state);
        let lesson_watcher = tokio::spawn(lesson.watch(stop.clone()));
        let limits = Limits {
            max_connections: self.state.config.max_connections,
            header_timeout: HEADER_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
        };
        let admin = self.admin_listener.map(|listener| {
            tracing::info!(
                addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
                "sidekiq admin listening"
            );
            tokio::spawn(serve(
                listener,
                crate::admin_router(self.state.clone()),
                limits,
                stop.clone(),
            ))
        });
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
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        stop.cancel();
        let _ = sampler.await;
        let _ = lesson_watcher.await;
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
