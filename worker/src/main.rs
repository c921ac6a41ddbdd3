//! `mail-worker` binary: settings from the environment, JSON logs, OS signals.
//!
//! The binary is PID 1 in its container, so it installs its own handlers: TERM/INT stop
//! gracefully (a second one exits at once), TSTP quiets (never suspends), TTIN logs the
//! running jobs.

use anyhow::Context;
use mail_worker::{Clock, Settings};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lettre=warn".into()),
        )
        .init();
    let settings = Settings::from_env().context("configuration")?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tstp = signal(SignalKind::from_raw(libc::SIGTSTP))?;
    let mut ttin = signal(SignalKind::from_raw(libc::SIGTTIN))?;
    // Start waits (with backoff) for Redis; a stop signal meanwhile must still end the process.
    let handle = tokio::select! {
        started = mail_worker::start(settings, Clock::system()) => started?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };
    let controls = handle.controls();
    tokio::spawn(async move {
        let mut stops = 0;
        loop {
            tokio::select! {
                _ = term.recv() => stops += 1,
                _ = int.recv() => stops += 1,
                _ = tstp.recv() => { controls.quiet(); continue; }
                _ = ttin.recv() => { controls.dump(); continue; }
            }
            if stops > 1 {
                tracing::warn!(
                    "second stop signal: exiting now; unfinished jobs stay in Redis for recovery"
                );
                std::process::exit(1);
            }
            controls.stop();
        }
    });
    handle.wait().await
}
