//! Child processes of a benchmark: output into a log file, stopped with SIGTERM (then
//! SIGKILL) and never left behind (`kill_on_drop`).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running child whose stdout and stderr go to `log`.
pub struct Proc {
    child: Child,
    /// Its pid (also the pid of the program `chroot` executes).
    pub pid: u32,
    /// The file its output goes to.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output appended to `log`.
    ///
    /// # Errors
    /// The log cannot be opened or the program cannot be started.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let pid = child.id().context("child has no pid")?;
        Ok(Proc {
            child,
            pid,
            log: log.to_path_buf(),
        })
    }

    /// `Some(code)` once it has exited.
    pub fn exited(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit code (-1: killed).
    pub async fn stop(mut self, grace: Duration) -> i32 {
        if let Some(code) = self.exited() {
            return code;
        }
        signal(self.pid, "-TERM").await;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code().unwrap_or(-1),
            _ => {
                let _ = self.child.kill().await;
                -1
            }
        }
    }

    /// The last `bytes` of the log (cheap to poll while a peer logs every job).
    pub fn tail(&self, bytes: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sends a signal with kill(1) (the workspace forbids `unsafe`, so no libc::kill).
pub async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Runs `cmd` to its end and returns its stdout; fails with its stderr.
///
/// # Errors
/// It cannot start or exits unsuccessfully.
pub async fn run(name: &str, mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {name}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{name} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
