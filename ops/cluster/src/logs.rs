//! Log files of the cluster under `<run>/logs`: one per replica (`worker-2.log`), rotated
//! at every start of the cluster (`.log` → `.log.1` → `.log.2` → `.log.3`) and appended to
//! when a replica restarts, with a marker line per process start.
//!
//! The children's stdout and stderr come through pipes: each line is written to the file and
//! looked at once, so the supervisor learns a worker's Sidekiq identity (from its
//! `mail-worker started` line) and sees every line logged at level ERROR.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::task::TaskTracker;

/// How many older generations of each log are kept.
const GENERATIONS: u32 = 3;

/// What a child's line told the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// The replica's port answers (sent by the readiness watcher, not read from a log).
    Ready,
    /// A worker logged its Sidekiq identity.
    Identity(String),
    /// A line at level ERROR (its message).
    Error(String),
}

/// The log directory and the tasks copying children's output into it.
#[derive(Clone)]
pub struct LogSink {
    dir: PathBuf,
    pumps: TaskTracker,
}

impl LogSink {
    /// Creates `dir` and rotates the logs a previous run left there.
    ///
    /// # Errors
    /// The directory cannot be created or a file renamed.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                rotate(&path)?;
            }
        }
        Ok(LogSink {
            dir: dir.to_path_buf(),
            pumps: TaskTracker::new(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>.log`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Appends a marker for a new process of `name`.
    pub fn start_marker(&self, name: &str, pid: u32) {
        let line = format!(
            "--- {} started {name} (pid {pid}) ---\n",
            crate::telemetry::local_timestamp()
        );
        if let Err(e) = append(&self.path(name), line.as_bytes()) {
            tracing::warn!(error = %e, "cannot write {}", self.path(name).display());
        }
    }

    /// The last `n` lines of `name`'s log.
    pub fn tail(&self, name: &str, n: usize) -> String {
        let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Copies `reader` line by line into `name`'s log until it closes, calling `notify` for
    /// lines that matter to the supervisor.
    pub fn pump<R>(&self, name: String, reader: R, notify: impl Fn(LogLine) + Send + 'static)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let path = self.path(&name);
        self.pumps.spawn(async move {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
            let mut file = match file {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write {}; output of {name} is dropped", path.display());
                    None
                }
            };
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                if let Some(f) = file.as_mut() {
                    // One write per line: with O_APPEND, stdout and stderr lines never interleave mid-line.
                    let _ = f.write_all(&buf);
                }
                if let Some(event) = classify(&String::from_utf8_lossy(&buf)) {
                    notify(event);
                }
            }
        });
    }

    /// Waits (at most 2 s) for the pumps of exited children to write their last lines.
    pub async fn flush(&self) {
        self.pumps.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pumps.wait()).await;
        self.pumps.reopen();
    }
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(bytes)
}

fn rotate(path: &Path) -> std::io::Result<()> {
    let generation = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..GENERATIONS).rev() {
        if generation(n).exists() {
            std::fs::rename(generation(n), generation(n + 1))?;
        }
    }
    std::fs::rename(path, generation(1))
}

/// Reads the JSON lines our binaries log (tracing's flattened JSON); anything else is only
/// copied.
fn classify(line: &str) -> Option<LogLine> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    if v.get("level").and_then(|l| l.as_str()) == Some("ERROR") {
        return Some(LogLine::Error(message.to_owned()));
    }
    if message == "mail-worker started" {
        let identity = v.get("identity").and_then(|i| i.as_str())?;
        return Some(LogLine::Identity(identity.to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_worker_lines() {
        let started = r#"{"timestamp":"t","level":"INFO","message":"mail-worker started","identity":"worker-1:42:abc","target":"mail_worker::runner"}"#;
        assert_eq!(
            classify(started),
            Some(LogLine::Identity("worker-1:42:abc".into()))
        );
        let error = r#"{"level":"ERROR","message":"boom"}"#;
        assert_eq!(classify(error), Some(LogLine::Error("boom".into())));
        assert_eq!(classify(r#"{"level":"INFO","message":"job done"}"#), None);
        assert_eq!(
            classify("1234:M 30 Nov 2026 13:00:00.000 * Ready to accept connections"),
            None
        );
        assert_eq!(classify("{not json"), None);
    }

    #[test]
    fn rotates_per_start_and_keeps_three() {
        let dir = std::env::temp_dir().join(format!("logs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for run in 1..=5 {
            let sink = LogSink::open(&dir).unwrap();
            append(&sink.path("web"), format!("run {run}\n").as_bytes()).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("web.log"), "run 5\n");
        assert_eq!(read("web.log.1"), "run 4\n");
        assert_eq!(read("web.log.3"), "run 2\n");
        assert!(!dir.join("web.log.4").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
