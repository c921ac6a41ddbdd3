//! The measurements: a timed drain, pickup latency under a steady half load, and RSS with a
//! large backlog.

use crate::procfs;
use crate::sink::Sink;
use crate::systems::{self, Paths, STAGING, Setup, System, Workload};
use anyhow::Context;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use test_services::RedisServer;

/// The shared services of a run.
pub struct Env {
    /// Built programs and paths.
    pub paths: Paths,
    /// The private redis-server.
    pub redis: RedisServer,
    /// Its pid (for CPU and write calls).
    pub redis_pid: u32,
    /// A connection for bookkeeping.
    pub conn: MultiplexedConnection,
    /// smtp-sink.
    pub sink: Sink,
    /// The addresses (`ip:port`) of this tool's own connections, left out of a census.
    pub own_addrs: Vec<String>,
}

/// One timed drain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drain {
    /// `summary.json` system name.
    pub system: String,
    /// `mail` / `noop`.
    pub workload: String,
    /// How it was started.
    pub setup: String,
    /// Concurrency given (None: its default).
    pub concurrency: Option<usize>,
    /// Processes.
    pub processes: usize,
    /// Jobs drained.
    pub jobs: u64,
    /// Seconds from the hand-over to the last job.
    pub wall_s: f64,
    /// Jobs per second.
    pub jobs_per_s: f64,
    /// CPU seconds of the processor process(es) in the window.
    pub cpu_s: f64,
    /// CPU seconds per 1,000 jobs.
    pub cpu_s_per_1000: f64,
    /// Peak RSS (VmHWM) of the (largest) processor process, MiB.
    pub rss_mb: f64,
    /// redis-server CPU in the window, cores.
    pub redis_cores: f64,
    /// smtp-sink CPU in the window, cores.
    pub sink_cores: f64,
    /// Processor cores.
    pub worker_cores: f64,
    /// The whole machine's busy cores in the window.
    pub machine_cores: f64,
    /// Busy cores not explained by processor, Redis and sink (other users, this tool).
    pub other_cores: f64,
    /// 1-minute load average at the start.
    pub loadavg: f64,
    /// redis-server write calls per job, less this tool's own polling: replies sent, with
    /// the replies to pipelined or multiplexed requests coalesced into one write.
    pub redis_writes_per_job: f64,
    /// Redis commands per job by name (INFO commandstats; commands inside Lua included).
    pub redis_commands_per_job: BTreeMap<String, f64>,
    /// What the after-run checks found wrong (empty: exact counts, nothing left).
    pub problems: Vec<String>,
}

/// Runs one drain of `n` jobs through a freshly started `setup`.
///
/// # Errors
/// A process fails to start or the drain does not end in time.
pub async fn drain(
    env: &mut Env,
    setup: &Setup,
    workload: Workload,
    n: u64,
    tag: &str,
) -> anyhow::Result<Drain> {
    drain_watched(env, setup, workload, n, tag, None)
        .await
        .map(|(d, _)| d)
}

/// The requests the processor's clients sent Redis during one (untimed) drain, counted
/// with `MONITOR`: top-level commands per job by name, without those run inside Lua
/// scripts and without this tool's own. Each is one request and one reply: a round trip
/// (pipelined requests share the network trip, but each still waits for its reply).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Census {
    /// System name.
    pub system: String,
    /// Workload.
    pub workload: String,
    /// How it was started.
    pub setup: String,
    /// Jobs drained.
    pub jobs: u64,
    /// All requests per job.
    pub requests_per_job: f64,
    /// Requests per job by command.
    pub by_command: BTreeMap<String, f64>,
}

/// Drains `n` jobs through `setup` with `MONITOR` watching (which slows Redis: the timing
/// of this drain is not used).
///
/// # Errors
/// As [`drain`], or `redis-cli monitor` cannot run.
pub async fn census(
    env: &mut Env,
    setup: &Setup,
    workload: Workload,
    n: u64,
    tag: &str,
) -> anyhow::Result<Census> {
    let file = env.paths.out.join(format!("{tag}.monitor"));
    let (_, text) = drain_watched(env, setup, workload, n, tag, Some(&file)).await?;
    let mut by_command: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0u64;
    for line in text.lines() {
        // `1764512345.123456 [0 127.0.0.1:53614] "evalsha" "..."`; Lua: `[0 lua]`.
        let Some((client, rest)) = line.split_once(" [").and_then(|(_, r)| r.split_once("] "))
        else {
            continue;
        };
        if client.ends_with(" lua") || text_is_ours(client, &env.own_addrs) {
            continue;
        }
        let name = rest
            .split('"')
            .nth(1)
            .unwrap_or_default()
            .to_ascii_lowercase();
        *by_command.entry(name).or_default() += 1.0;
        total += 1;
    }
    let _ = std::fs::remove_file(&file);
    Ok(Census {
        system: setup.system.id().into(),
        workload: workload.id().into(),
        setup: setup.label(),
        jobs: n,
        requests_per_job: total as f64 / n as f64,
        by_command: by_command
            .into_iter()
            .map(|(k, v)| (k, v / n as f64))
            .filter(|(_, v)| *v >= 0.005)
            .collect(),
    })
}

/// Whether a MONITOR client field (`0 127.0.0.1:53614`) is one of this tool's connections.
fn text_is_ours(client: &str, own: &[String]) -> bool {
    client
        .split_whitespace()
        .nth(1)
        .is_some_and(|addr| own.iter().any(|o| o == addr))
}

async fn drain_watched(
    env: &mut Env,
    setup: &Setup,
    workload: Workload,
    n: u64,
    tag: &str,
    monitor: Option<&std::path::Path>,
) -> anyhow::Result<(Drain, String)> {
    let conn = &mut env.conn;
    redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    let system = setup.system;
    let apalis = if system == System::Apalis {
        Some(systems::apalis_push(&env.paths, &env.redis.url(), workload, n).await?)
    } else {
        systems::stage(conn, STAGING, workload, 0, n).await?;
        None
    };
    let expect = [("BENCH_EXPECT", n.to_string())];
    let mut running = systems::start(
        systems::Services {
            paths: &env.paths,
            redis_url: &env.redis.url(),
            sink: &env.sink,
        },
        setup,
        workload,
        conn,
        &expect,
        tag,
    )
    .await?;
    let sink0 = env.sink.count();
    let loadavg = procfs::loadavg1();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(conn)
        .await?;
    let (w0, r0, s0, m0) = (
        running.cpu_secs(),
        procfs::cpu_secs(env.redis_pid),
        procfs::cpu_secs(env.sink.proc.pid),
        procfs::machine_busy_secs(),
    );
    let watcher = match monitor {
        Some(file) => {
            let mut cmd = tokio::process::Command::new("redis-cli");
            cmd.arg("-p")
                .arg(env.redis.port().to_string())
                .arg("monitor");
            let p = crate::process::Proc::spawn("redis-cli monitor", cmd, file)?;
            // MONITOR answers OK first; from then on every command is streamed.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !p.output().starts_with("OK") && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some(p)
        }
        None => None,
    };
    let conn = &mut env.conn;
    let writes0 = procfs::write_calls(env.redis_pid);
    let t0 = Instant::now();
    match &apalis {
        Some(b) => {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (parked, key) in &b.parked {
                pipe.cmd("RENAME").arg(parked).arg(key).ignore();
            }
            pipe.cmd("DEL")
                .arg(&b.signal)
                .ignore()
                .cmd("LPUSH")
                .arg(&b.signal)
                .arg(1)
                .ignore()
                .query_async::<()>(conn)
                .await?;
        }
        None => {
            redis::pipe()
                .atomic()
                .cmd("SADD")
                .arg("queues")
                .arg("default")
                .ignore()
                .cmd("RENAME")
                .arg(STAGING)
                .arg("queue:default")
                .ignore()
                .query_async::<()>(conn)
                .await?;
        }
    }
    let timeout = Duration::from_secs_f64((n as f64 / 20.0).max(180.0));
    let mut polls = 0u64;
    loop {
        let done = match (workload, system) {
            (Workload::Mail, _) => env.sink.count().saturating_sub(sink0) >= n,
            (Workload::Noop, System::RustySidekiq | System::Apalis) => running.peer_drained(),
            (Workload::Noop, _) => {
                polls += 1;
                systems::sidekiq_backlog(conn).await? == 0
            }
        };
        if done {
            break;
        }
        if let Some(why) = running.exited() {
            let _ = running.stop().await;
            anyhow::bail!("{tag}: the processor stopped during the drain: {why}");
        }
        if t0.elapsed() > timeout {
            let _ = running.stop().await;
            anyhow::bail!("{tag}: not drained after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let writes = procfs::write_calls(env.redis_pid) - writes0;
    let (w1, r1, s1, m1) = (
        running.cpu_secs(),
        procfs::cpu_secs(env.redis_pid),
        procfs::cpu_secs(env.sink.proc.pid),
        procfs::machine_busy_secs(),
    );
    let rss = running.peak_rss_mb();
    let monitored = match watcher {
        Some(p) => {
            // Let the last replies' commands reach the file, then stop watching.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let text = p.output();
            p.stop(Duration::from_secs(5)).await;
            text
        }
        None => String::new(),
    };
    let commands = commandstats(conn).await?;
    let exits = running.stop().await;
    let problems = verify(conn, &env.sink, system, workload, n, sink0, &exits).await?;
    let (cpu, redis_cpu, sink_cpu, machine) = (w1 - w0, r1 - r0, s1 - s0, m1 - m0);
    let drain = Drain {
        system: system.id().into(),
        workload: workload.id().into(),
        setup: setup.label(),
        concurrency: setup.concurrency,
        processes: setup.processes,
        jobs: n,
        wall_s: wall,
        jobs_per_s: n as f64 / wall,
        cpu_s: cpu,
        cpu_s_per_1000: cpu / n as f64 * 1000.0,
        rss_mb: rss,
        redis_cores: redis_cpu / wall,
        sink_cores: sink_cpu / wall,
        worker_cores: cpu / wall,
        machine_cores: machine / wall,
        other_cores: ((machine - cpu - redis_cpu - sink_cpu) / wall).max(0.0),
        loadavg,
        redis_writes_per_job: writes.saturating_sub(polls) as f64 / n as f64,
        redis_commands_per_job: commands
            .into_iter()
            .map(|(k, v)| (k, v as f64 / n as f64))
            .filter(|(_, v)| *v >= 0.01)
            .collect(),
        problems,
    };
    Ok((drain, monitored))
}

/// Calls per command since the last `CONFIG RESETSTAT`, without this tool's own.
async fn commandstats(conn: &mut MultiplexedConnection) -> anyhow::Result<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        // Our own bookkeeping: the backlog poll (EVAL, KEYS, TYPE, LLEN) and these stats.
        if matches!(name, "info" | "config|resetstat" | "eval" | "keys" | "type") {
            continue;
        }
        out.insert(name.to_owned(), calls);
    }
    Ok(out)
}

/// Exact counts, nothing failed or left behind.
async fn verify(
    conn: &mut MultiplexedConnection,
    sink: &Sink,
    system: System,
    workload: Workload,
    n: u64,
    sink0: u64,
    exits: &[(i32, String)],
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    if workload == Workload::Mail {
        let sent = sink.count().saturating_sub(sink0);
        if sent != n {
            problems.push(format!("the sink counted {sent} messages, expected {n}"));
        }
    }
    match system {
        System::MailWorker | System::Sidekiq(_) => {
            let (processed, failed): (Option<u64>, Option<u64>) = redis::pipe()
                .get("stat:processed")
                .get("stat:failed")
                .query_async(conn)
                .await?;
            let (processed, failed) = (processed.unwrap_or(0), failed.unwrap_or(0));
            if processed != n || failed != 0 {
                problems.push(format!(
                    "stat:processed={processed} stat:failed={failed}, expected {n}/0"
                ));
            }
            let (q, retry, dead): (u64, u64, u64) = redis::pipe()
                .llen("queue:default")
                .zcard("retry")
                .zcard("dead")
                .query_async(conn)
                .await?;
            if q + retry + dead > 0 {
                problems.push(format!(
                    "left behind: queue {q}, retry {retry}, dead {dead}"
                ));
            }
        }
        System::RustySidekiq | System::Apalis => {
            let completed: u64 = exits
                .iter()
                .filter_map(|(_, log)| systems::peer_line(log, "exit"))
                .map(|v| {
                    v.get("completed")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                        - v.get("failed")
                            .and_then(serde_json::Value::as_u64)
                            .unwrap_or(0)
                })
                .sum();
            if completed != n {
                problems.push(format!(
                    "the peer completed {completed} jobs without error, expected {n}"
                ));
            }
        }
    }
    for (code, log) in exits {
        if *code != 0 {
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            problems.push(format!("exit code {code}: {tail}"));
        }
    }
    Ok(problems)
}

/// Pickup latency under a steady load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pickup {
    /// System name.
    pub system: String,
    /// Workload.
    pub workload: String,
    /// How it was started.
    pub setup: String,
    /// Jobs per second offered.
    pub rate: u64,
    /// Jobs measured (after the first 5%).
    pub samples: usize,
    /// Median enqueue → start, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
    /// How it was measured.
    pub method: String,
    /// Load average at the start.
    pub loadavg: f64,
}

/// Offers `rate` jobs/s for `secs` seconds, one push per job, and measures how long each
/// waits before a worker takes it.
///
/// Sidekiq-format systems: Redis keyspace notifications on `queue:default`; the i-th pop
/// (BRPOP, LMOVE) takes the i-th push (a FIFO list), both timestamped by one subscriber.
/// Every one of these systems takes a job only for a free worker, so the pop is the start.
/// apalis fetches batches ahead of its workers: its handler records start − enqueue time.
///
/// # Errors
/// Redis or process failures.
pub async fn pickup(
    env: &mut Env,
    setup: &Setup,
    workload: Workload,
    rate: u64,
    secs: u64,
    tag: &str,
) -> anyhow::Result<Pickup> {
    let total = rate * secs;
    let conn = &mut env.conn;
    redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    let loadavg = procfs::loadavg1();
    let (micros, method) = if setup.system == System::Apalis {
        let file = env.paths.out.join(format!("{tag}.pickups"));
        let _ = std::fs::remove_file(&file);
        let vars = [
            ("BENCH_EXPECT", total.to_string()),
            ("BENCH_PICKUP_OUT", file.display().to_string()),
        ];
        let mut running = systems::start(
            systems::Services {
                paths: &env.paths,
                redis_url: &env.redis.url(),
                sink: &env.sink,
            },
            setup,
            workload,
            conn,
            &vars,
            tag,
        )
        .await?;
        let mut cmd = tokio::process::Command::new(&env.paths.apalis);
        cmd.arg("produce")
            .arg(workload.id())
            .arg(rate.to_string())
            .arg(secs.to_string())
            .env("REDIS_URL", env.redis.url())
            .env("RUST_LOG", "warn");
        crate::process::run("peer-apalis produce", cmd).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !running.peer_drained() && running.exited().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running.stop().await;
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        let v: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
        (
            v,
            "handler start − enqueue time carried in the task".to_owned(),
        )
    } else {
        let running = systems::start(
            systems::Services {
                paths: &env.paths,
                redis_url: &env.redis.url(),
                sink: &env.sink,
            },
            setup,
            workload,
            conn,
            &[],
            tag,
        )
        .await?;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Kl")
            .query_async::<()>(conn)
            .await?;
        redis::cmd("SADD")
            .arg("queues")
            .arg("default")
            .query_async::<()>(conn)
            .await?;
        let client = redis::Client::open(env.redis.url())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe("__keyspace@0__:queue:default").await?;
        let collector = tokio::spawn(async move {
            let mut pushes = Vec::new();
            let mut pops = Vec::new();
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let at = Instant::now();
                let ev: String = msg.get_payload().unwrap_or_default();
                match ev.as_str() {
                    "lpush" => pushes.push(at),
                    "rpop" | "lpop" | "lmove_from" | "rpoplpush" => pops.push(at),
                    "del" | "rpush" => {}
                    _ => {}
                }
                if pushes.len() as u64 >= total && pops.len() >= pushes.len() {
                    break;
                }
            }
            (pushes, pops)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        produce(conn, workload, rate, secs).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !collector.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = if collector.is_finished() {
            collector.await?
        } else {
            collector.abort();
            anyhow::bail!("{tag}: not every job was picked up within 60 s");
        };
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("")
            .query_async::<()>(conn)
            .await?;
        running.stop().await;
        let (pushes, pops) = result;
        let v: Vec<u64> = pushes
            .iter()
            .zip(pops.iter())
            .map(|(a, b)| b.saturating_duration_since(*a).as_micros() as u64)
            .collect();
        (
            v,
            "keyspace notifications: i-th pop − i-th LPUSH".to_owned(),
        )
    };
    let skip = micros.len() / 20;
    let mut v: Vec<u64> = micros.into_iter().skip(skip).collect();
    v.sort_unstable();
    let pct = |p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1000.0
    };
    Ok(Pickup {
        system: setup.system.id().into(),
        workload: workload.id().into(),
        setup: setup.label(),
        rate,
        samples: v.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: v.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        method,
        loadavg,
    })
}

/// `rate` jobs/s for `secs` s into `queue:default`, one `LPUSH` per job (pipelined per
/// millisecond tick), each with its own `enqueued_at`.
async fn produce(
    conn: &mut MultiplexedConnection,
    workload: Workload,
    rate: u64,
    secs: u64,
) -> anyhow::Result<()> {
    let total = rate * secs;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due == sent {
            continue;
        }
        let mut pipe = redis::pipe();
        for i in sent..due {
            let mut job = systems::job(workload, i);
            job.set_enqueued_at(sidekiq_wire::Timestamp::now());
            pipe.cmd("LPUSH")
                .arg("queue:default")
                .arg(job.to_json_string())
                .ignore();
        }
        pipe.query_async::<()>(conn).await?;
        sent = due;
    }
    Ok(())
}

/// RSS while mail-worker drains part of a large backlog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backlog {
    /// Jobs queued before the worker started.
    pub queued: u64,
    /// Seconds sampled.
    pub secs: f64,
    /// Jobs drained meanwhile.
    pub drained: u64,
    /// (seconds since start, VmRSS MiB) every 200 ms.
    pub samples: Vec<(f64, f64)>,
    /// Smallest RSS after the first second, MiB.
    pub rss_min_mb: f64,
    /// Largest RSS, MiB.
    pub rss_max_mb: f64,
    /// VmHWM at the end, MiB.
    pub peak_mb: f64,
    /// Redis memory with the backlog, MiB.
    pub redis_used_mb: f64,
}

/// Queues `queued` MailSenderJobs, starts one mail-worker and samples its RSS for `secs`.
///
/// # Errors
/// Redis or process failures.
pub async fn backlog(env: &mut Env, queued: u64, secs: u64) -> anyhow::Result<Backlog> {
    let conn = &mut env.conn;
    redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    systems::stage(conn, "queue:default", Workload::Mail, 0, queued).await?;
    redis::cmd("SADD")
        .arg("queues")
        .arg("default")
        .query_async::<()>(conn)
        .await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    let redis_used_mb = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1048576.0;
    let setup = Setup::new(System::MailWorker, Some(25));
    let running = systems::start(
        systems::Services {
            paths: &env.paths,
            redis_url: &env.redis.url(),
            sink: &env.sink,
        },
        &setup,
        Workload::Mail,
        conn,
        &[],
        "backlog",
    )
    .await?;
    let pid = running.procs[0].pid;
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        samples.push((t0.elapsed().as_secs_f64(), procfs::rss_mb(pid)));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = procfs::peak_rss_mb(pid);
    let left: u64 = redis::cmd("LLEN")
        .arg("queue:default")
        .query_async(conn)
        .await?;
    running.stop().await;
    let after: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t >= 1.0)
        .map(|(_, r)| *r)
        .collect();
    Ok(Backlog {
        queued,
        secs: t0.elapsed().as_secs_f64(),
        drained: queued.saturating_sub(left),
        rss_min_mb: after.iter().copied().fold(f64::INFINITY, f64::min),
        rss_max_mb: samples.iter().map(|(_, r)| *r).fold(0.0, f64::max),
        samples,
        peak_mb: peak,
        redis_used_mb,
    })
}
