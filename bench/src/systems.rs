//! The six job systems under test, how each is started, fed and watched.
//!
//! All but apalis read Sidekiq's format, so `mail-bench` writes their jobs itself (the very
//! same payloads for each); apalis has its own data model, so its peer binary enqueues.

use crate::process::{self, Proc};
use crate::sink::Sink;
use anyhow::Context;
use mail_protocol::MailSenderArgs;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use sidekiq_wire::{Job, Timestamp};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use test_services::SidekiqVersion;
use test_services::sidekiq_version::StagedDir;
use tokio::process::Command;

/// The private list jobs are built in before a drain hands them over with one `RENAME`.
pub const STAGING: &str = "bench:staging";

/// A job system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Ours.
    MailWorker,
    /// Ruby Sidekiq with the `mail` gem.
    Sidekiq(SidekiqVersion),
    /// rusty-sidekiq 0.15 (`bench/peers/rusty-sidekiq`).
    RustySidekiq,
    /// apalis 1.0 + apalis-redis (`bench/peers/apalis`).
    Apalis,
}

impl System {
    /// Every system, in the order of the tables.
    pub const ALL: [System; 6] = [
        System::MailWorker,
        System::Sidekiq(SidekiqVersion::V8),
        System::Sidekiq(SidekiqVersion::V7),
        System::Sidekiq(SidekiqVersion::V6),
        System::RustySidekiq,
        System::Apalis,
    ];

    /// The name in `summary.json`.
    pub fn id(self) -> &'static str {
        match self {
            System::MailWorker => "mail-worker",
            System::Sidekiq(SidekiqVersion::V8) => "sidekiq-8",
            System::Sidekiq(SidekiqVersion::V7) => "sidekiq-7",
            System::Sidekiq(SidekiqVersion::V6) => "sidekiq-6.4",
            System::RustySidekiq => "rusty-sidekiq",
            System::Apalis => "apalis",
        }
    }

    /// Parses [`System::id`].
    pub fn from_id(id: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Whether jobs are Sidekiq payloads in `queue:default`.
    pub fn sidekiq_format(self) -> bool {
        self != System::Apalis
    }

    /// What its concurrency setting is called and its default here.
    pub fn default_concurrency(self) -> &'static str {
        match self {
            System::MailWorker => "WORKER_CONCURRENCY=25",
            System::Sidekiq(SidekiqVersion::V6) => "-c 10",
            System::Sidekiq(_) => "-c 5",
            System::RustySidekiq => "num_workers = CPUs (2)",
            System::Apalis => "no limit",
        }
    }
}

/// The two jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The seed's `MailSenderJob`: one mail to smtp-sink.
    Mail,
    /// `NoopJob`: nothing; the queue machinery alone.
    Noop,
}

impl Workload {
    /// `mail` / `noop`.
    pub fn id(self) -> &'static str {
        match self {
            Workload::Mail => "mail",
            Workload::Noop => "noop",
        }
    }
}

/// Built programs and paths.
pub struct Paths {
    /// `bench/out`.
    pub out: PathBuf,
    /// `target/release/mail-worker`.
    pub mail_worker: PathBuf,
    /// The rusty-sidekiq peer.
    pub rusty: PathBuf,
    /// The apalis peer.
    pub apalis: PathBuf,
}

/// How one system is started for a measurement.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The system.
    pub system: System,
    /// Concurrency (None: the system's own default).
    pub concurrency: Option<usize>,
    /// Processes (mail-worker scaling only).
    pub processes: usize,
}

impl Setup {
    /// One process at `concurrency`.
    pub fn new(system: System, concurrency: Option<usize>) -> Self {
        Setup {
            system,
            concurrency,
            processes: 1,
        }
    }

    /// A label such as `sidekiq-8 -c 25`.
    pub fn label(&self) -> String {
        let c = match (self.system, self.concurrency) {
            (s, None) => format!("default ({})", s.default_concurrency()),
            (System::Sidekiq(_), Some(c)) => format!("-c {c}"),
            (System::MailWorker, Some(c)) => format!("concurrency {c}"),
            (System::RustySidekiq, Some(c)) => format!("num_workers {c}"),
            (System::Apalis, Some(c)) => format!(".concurrency({c})"),
        };
        if self.processes > 1 {
            format!("{} × {} processes, {c}", self.system.id(), self.processes)
        } else {
            format!("{} {c}", self.system.id())
        }
    }
}

/// A started system: its processes (and the staged Ruby file they read).
pub struct Running {
    /// The processes, one per instance.
    pub procs: Vec<Proc>,
    _staged: Option<StagedDir>,
}

impl Running {
    /// Sum of the processes' CPU seconds.
    pub fn cpu_secs(&self) -> f64 {
        self.procs
            .iter()
            .map(|p| crate::procfs::cpu_secs(p.pid))
            .sum()
    }

    /// Largest peak RSS of one process, MiB.
    pub fn peak_rss_mb(&self) -> f64 {
        self.procs
            .iter()
            .map(|p| crate::procfs::peak_rss_mb(p.pid))
            .fold(0.0, f64::max)
    }

    /// Whether a peer has printed its `drained` line (it ran the jobs it was told to expect).
    pub fn peer_drained(&self) -> bool {
        self.procs
            .iter()
            .any(|p| peer_line(&p.tail(4096), "drained").is_some())
    }

    /// The first process that has exited, with its exit code and the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        self.procs.iter_mut().find_map(|p| {
            let code = p.exited()?;
            let tail = p.tail(2048);
            Some(format!("{} exited ({code}): {tail}", p.log.display()))
        })
    }

    /// Stops every process (SIGTERM, then SIGKILL after 30 s); returns the exit codes and
    /// the last log lines of each.
    pub async fn stop(self) -> Vec<(i32, String)> {
        let mut out = Vec::new();
        for p in self.procs {
            let log = p.log.clone();
            let code = p.stop(Duration::from_secs(30)).await;
            out.push((code, std::fs::read_to_string(log).unwrap_or_default()));
        }
        out
    }
}

/// Where a system is started: programs, Redis and the sink.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// Built programs and paths.
    pub paths: &'a Paths,
    /// The private redis-server's URL.
    pub redis_url: &'a str,
    /// smtp-sink.
    pub sink: &'a Sink,
}

/// Starts `setup` for `workload` on `at`; `env` adds variables (`BENCH_EXPECT`,
/// `BENCH_PICKUP_OUT`). Returns once every process is ready to fetch.
///
/// # Errors
/// A process does not start or is not ready within 60 s.
pub async fn start(
    at: Services<'_>,
    setup: &Setup,
    workload: Workload,
    conn: &mut MultiplexedConnection,
    env: &[(&str, String)],
    tag: &str,
) -> anyhow::Result<Running> {
    let (paths, redis_url) = (at.paths, at.redis_url);
    let smtp_port = at.sink.port.to_string();
    let mut procs = Vec::new();
    let mut staged = None;
    for i in 0..setup.processes {
        let log = paths.out.join(format!("{tag}-{i}.log"));
        let mut cmd = match setup.system {
            System::MailWorker => {
                let mut c = Command::new(&paths.mail_worker);
                c.env(
                    "WORKER_CONCURRENCY",
                    setup.concurrency.unwrap_or(25).to_string(),
                )
                .env("WORKER_QUEUES", "default")
                .env("METRICS_PORT", "0")
                .env("SHUTDOWN_TIMEOUT", "10")
                .env("RUST_LOG", "info,lettre=warn");
                c
            }
            System::Sidekiq(v) => {
                let (inner, guard) = v.stage("bench", &["bench/ruby/jobs.rb"]);
                staged = Some(guard);
                let program = if v.root().is_some() {
                    "/usr/bin/sidekiq"
                } else {
                    "sidekiq"
                };
                let mut c = v.server_command(program);
                c.arg("-r")
                    .arg(format!("{inner}/bench/ruby/jobs.rb"))
                    .args(["-q", "default", "-t", "10"]);
                if let Some(n) = setup.concurrency {
                    c.arg("-c").arg(n.to_string());
                }
                c
            }
            System::RustySidekiq => Command::new(&paths.rusty),
            System::Apalis => {
                let mut c = Command::new(&paths.apalis);
                c.arg("work").arg(workload.id());
                c
            }
        };
        if matches!(setup.system, System::RustySidekiq | System::Apalis)
            && let Some(n) = setup.concurrency
        {
            cmd.env("PEER_CONCURRENCY", n.to_string());
        }
        cmd.env("REDIS_URL", redis_url)
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", &smtp_port);
        for (k, v) in env {
            cmd.env(k, v);
        }
        procs.push(Proc::spawn(&format!("{tag}-{i}"), cmd, &log)?);
    }
    let running = Running {
        procs,
        _staged: staged,
    };
    wait_ready(setup, conn, &running).await?;
    Ok(running)
}

/// Sidekiq-format systems: their heartbeats in `processes`; the Rust peers: their
/// "started" line (their heartbeats come late), then a second to register and block.
async fn wait_ready(
    setup: &Setup,
    conn: &mut MultiplexedConnection,
    running: &Running,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = match setup.system {
            System::MailWorker | System::Sidekiq(_) => {
                let n: usize = redis::cmd("SCARD")
                    .arg("processes")
                    .query_async(conn)
                    .await?;
                n >= setup.processes
            }
            System::RustySidekiq | System::Apalis => running
                .procs
                .iter()
                .all(|p| p.output().contains("\"event\":\"started\"")),
        };
        if ready {
            let settle = if setup.system.sidekiq_format() && setup.system != System::RustySidekiq {
                500
            } else {
                1000
            };
            tokio::time::sleep(Duration::from_millis(settle)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = running.procs.iter().map(Proc::output).collect();
            anyhow::bail!(
                "{} not ready after 60 s; output: {}",
                setup.label(),
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job payload for job `i` (the same recipients for every system).
pub fn job(workload: Workload, i: u64) -> Job {
    match workload {
        Workload::Mail => MailSenderArgs {
            to: format!("user{i}@example.test"),
            name: Some(format!("User {i}")),
            email_id: None,
            mail_job_id: None,
            instance: None,
            simulate_error: false,
        }
        .into_job("default"),
        Workload::Noop => Job::new("NoopJob", vec![json!(i)]),
    }
}

/// Builds `n` jobs as `push_bulk` does (one `enqueued_at`) into `key`, 1,000 per `LPUSH`,
/// starting at job number `first`.
///
/// # Errors
/// Redis errors.
pub async fn stage(
    conn: &mut MultiplexedConnection,
    key: &str,
    workload: Workload,
    first: u64,
    n: u64,
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let mut i = first;
    while i < first + n {
        let end = (i + sidekiq_wire::client::BULK_CHUNK as u64).min(first + n);
        let chunk: Vec<String> = (i..end)
            .map(|j| {
                let mut job = job(workload, j);
                job.ensure_created_at(now);
                job.set_enqueued_at(now);
                job.to_json_string()
            })
            .collect();
        redis::cmd("LPUSH")
            .arg(key)
            .arg(chunk)
            .query_async::<()>(conn)
            .await?;
        i = end;
    }
    Ok(())
}

/// What the apalis peer's `push` printed: where the parked tasks are.
pub struct ApalisBatch {
    /// (parked key, its real name) pairs.
    pub parked: Vec<(String, String)>,
    /// `<queue>:signal`.
    pub signal: String,
}

/// Runs `peer-apalis push <workload> n`.
///
/// # Errors
/// The peer fails or prints something else.
pub async fn apalis_push(
    paths: &Paths,
    redis_url: &str,
    workload: Workload,
    n: u64,
) -> anyhow::Result<ApalisBatch> {
    let mut cmd = Command::new(&paths.apalis);
    cmd.arg("push")
        .arg(workload.id())
        .arg(n.to_string())
        .env("REDIS_URL", redis_url)
        .env("RUST_LOG", "warn");
    let out = process::run("peer-apalis push", cmd).await?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("\"parked\""))
        .with_context(|| format!("peer-apalis push printed {out:?}"))?;
    let v: Value = serde_json::from_str(line)?;
    let parked: Vec<(String, String)> = serde_json::from_value(v["parked"].clone())?;
    anyhow::ensure!(
        !parked.is_empty(),
        "peer-apalis push parked nothing: {line}"
    );
    Ok(ApalisBatch {
        parked,
        signal: v["signal"]
            .as_str()
            .with_context(|| format!("no signal in {line}"))?
            .to_owned(),
    })
}

/// The peer's `{"event":"drained"|"exit", "completed": N, ...}` line, if printed.
pub fn peer_line(log: &str, event: &str) -> Option<Value> {
    log.lines()
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .filter_map(|l| serde_json::from_str::<Value>(l.get(l.find('{')?..)?).ok())
        .next_back()
}

/// Jobs still waiting or running in Sidekiq's queue and mail-worker's in-progress lists,
/// in one round trip.
pub async fn sidekiq_backlog(conn: &mut MultiplexedConnection) -> anyhow::Result<u64> {
    const LUA: &str = "local n = redis.call('LLEN', 'queue:default') \
        for _, k in ipairs(redis.call('KEYS', 'mailworker:inprogress:*')) do \
          if redis.call('TYPE', k).ok == 'list' then n = n + redis.call('LLEN', k) end end \
        return n";
    Ok(redis::Script::new(LUA).invoke_async(conn).await?)
}
