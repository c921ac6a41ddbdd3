//! postfix's `smtp-sink` (unpacked by `bench/run` into `.run/postfix`, never installed as an
//! MTA): accepts every message and, with `-c`, prints a running count we read from its log.

use crate::process::Proc;
use anyhow::Context;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::process::Command;

/// A running smtp-sink on a free loopback port.
pub struct Sink {
    /// The process (its CPU is measured).
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    /// The highest count read so far.
    seen: AtomicU64,
}

/// Where `bench/run` unpacked postfix.
pub fn postfix_dir(root: &Path) -> PathBuf {
    root.join(".run").join("postfix")
}

impl Sink {
    /// Starts it (backlog 1,000) and waits for its greeting.
    ///
    /// # Errors
    /// It is not unpacked or does not answer within 10 s.
    pub async fn start(root: &Path, out: &Path) -> anyhow::Result<Self> {
        let dir = postfix_dir(root);
        let port = test_services::free_port();
        let mut cmd = Command::new(dir.join("usr/sbin/smtp-sink"));
        cmd.env("LD_LIBRARY_PATH", dir.join("usr/lib/postfix"))
            .args(["-c", "-u", "nobody"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000");
        let proc = Proc::spawn("smtp-sink", cmd, &out.join("smtp-sink.out"))
            .context("smtp-sink (bench/run unpacks it into .run/postfix)")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if greets(port).await {
                return Ok(Sink {
                    proc,
                    port,
                    seen: AtomicU64::new(0),
                });
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "smtp-sink does not answer on {port}: {}",
                proc.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages accepted so far: the last complete `mesg=N` it printed (it rewrites one
    /// status line with `\r`, so the end of the file may hold a number still being
    /// written), never less than an earlier answer.
    pub fn count(&self) -> u64 {
        let Ok(mut f) = std::fs::File::open(&self.proc.log) else {
            return self.seen.load(Ordering::Relaxed);
        };
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(256)));
        let mut tail = String::new();
        let _ = f.read_to_string(&mut tail);
        let latest = tail
            .rsplit("mesg=")
            .filter_map(|s| {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                // Complete only when something follows the digits.
                (!digits.is_empty() && s.len() > digits.len()).then_some(digits)
            })
            .find_map(|d| d.parse::<u64>().ok())
            .unwrap_or(0);
        self.seen.fetch_max(latest, Ordering::Relaxed).max(latest)
    }
}

async fn greets(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await, Ok(Ok(n)) if buf[..n].starts_with(b"220"))
}
