//! `mail-catcher --smtp 127.0.0.1:1025 --http 127.0.0.1:1080 --dir .run/mail`: accepts every
//! message over SMTP, keeps it on disk, shows it on a web page. See `mail_cluster::catcher`.

use anyhow::Context;
use mail_cluster::catcher::{Store, http, smtp};
use mail_cluster::config::CatcherSettings;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = CatcherSettings::from_args(&args, &service_runtime::config::Vars::from_env())
        .context("mail-catcher")?;
    let store = Arc::new(Store::open(&settings.dir)?);
    let smtp_listener = tokio::net::TcpListener::bind(&settings.smtp)
        .await
        .with_context(|| format!("SMTP on {}", settings.smtp))?;
    let http_listener = tokio::net::TcpListener::bind(&settings.http)
        .await
        .with_context(|| format!("HTTP on {}", settings.http))?;
    tracing::info!(
        smtp = %settings.smtp,
        http = %settings.http,
        dir = %settings.dir.display(),
        kept = store.stats().messages,
        latency_ms = settings.latency.as_millis() as u64,
        "mail-catcher started"
    );
    let smtp_task = tokio::spawn(smtp::serve(smtp_listener, store.clone(), settings.latency));
    let app = http::router(store);
    let server = axum::serve(http_listener, app).with_graceful_shutdown(async {
        let _ = stop().await;
    });
    server.await.context("HTTP server")?;
    smtp_task.abort();
    tracing::info!("mail-catcher stopped");
    Ok(())
}

async fn stop() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
