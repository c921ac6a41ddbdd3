//! `mail-worker` binary: settings from the environment, JSON logs, OS signals.
//!
//! The binary is PID 1 in its container, so it installs its own handlers: TERM/INT stop
//! gracefully (a second one exits at once), TSTP quiets (never suspends), TTIN logs the
//! running jobs — through the same signal table as the Web UI's Quiet and Stop buttons.

use anyhow::Context;
use mail_worker::{Clock, Settings, Signal};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("configuration")?;
    service_runtime::logging::init(&settings.log_filter);
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
    let remote = handle.remote();
    tokio::spawn(async move {
        let mut stops = 0;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "TERM",
                _ = int.recv() => "INT",
                _ = tstp.recv() => "TSTP",
                _ = ttin.recv() => "TTIN",
            };
            let Some(sig) = Signal::from_name(name) else {
                continue;
            };
            if sig == Signal::Stop {
                stops += 1;
                if stops > 1 {
                    tracing::warn!(
                        "second stop signal: exiting now; unfinished jobs stay in Redis for recovery"
                    );
                    std::process::exit(1);
                }
            }
            remote.signal(sig);
        }
    });
    handle.wait().await
}
