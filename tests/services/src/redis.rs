//! A private `redis-server` per test.

use crate::process::{TempDir, free_port};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free loopback port; killed (and its files removed)
/// on drop. Nothing is shared, so tests never need FLUSHALL.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    persistent: bool,
}

impl RedisServer {
    /// An in-memory server (no RDB, no AOF).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server with an fsync-always AOF, so [`RedisServer::restart`] keeps the data.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Self {
        let dir = TempDir::new("redis");
        for _ in 0..20 {
            let port = free_port();
            if let Some(child) = spawn(port, &dir, persistent) {
                return RedisServer {
                    child: Some(child),
                    port,
                    dir,
                    persistent,
                };
            }
        }
        panic!("could not start redis-server (is Debian's redis-server installed?)");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid while it runs (the benchmark reads its CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A fresh async connection. Its response timeout is generous (redis-rs defaults to
    /// 500 ms): a test's own reads must not fail because the machine is busy.
    pub async fn conn(&self) -> ::redis::aio::MultiplexedConnection {
        let config = ::redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(10)));
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap()
    }

    /// `ZRANGE key 0 -1 WITHSCORES`: members with their scores, lowest first.
    pub async fn zrange_withscores(&self, key: &str) -> Vec<(String, f64)> {
        let mut c = self.conn().await;
        ::redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await
            .unwrap()
    }

    /// `ZCARD key`.
    pub async fn zcard(&self, key: &str) -> u64 {
        let mut c = self.conn().await;
        ::redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap()
    }

    /// `LLEN key`.
    pub async fn llen(&self, key: &str) -> u64 {
        let mut c = self.conn().await;
        ::redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap()
    }

    /// `SMEMBERS key`, sorted.
    pub async fn smembers(&self, key: &str) -> Vec<String> {
        let mut c = self.conn().await;
        let mut v: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        v.sort();
        v
    }

    /// Kills the server (SIGKILL: no final save; the AOF is fsynced on every write).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered, and its
    /// clock keeps running, so keys expire meanwhile — a hung Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success(), "kill {sig} redis-server");
        }
    }

    /// Starts it again on the same port (with its data if persistent).
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn(self.port, &self.dir, self.persistent);
        assert!(
            child.is_some(),
            "redis-server did not come back on port {}",
            self.port
        );
        self.child = child;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16, dir: &TempDir, persistent: bool) -> Option<Child> {
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--loglevel", "warning"]);
    if persistent {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None; // the port was taken between free_port() and bind
        }
        if ping(&url) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn ping(url: &str) -> bool {
    ::redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
        .and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}
