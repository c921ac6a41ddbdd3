//! `mail-bench`: the benchmark behind `bench/run` — mail-worker against Ruby Sidekiq 8.1, 7.3
//! and 6.4.1 and the Rust peers rusty-sidekiq and apalis, side by side on one private
//! redis-server and one postfix smtp-sink, with the test harness (`test-services`) starting
//! Redis and the Sidekiq roots.
//!
//! ```text
//! mail-bench [--quick] [--runs N] [--mail N] [--noop N] [--systems a,b] [--wait-quiet S]
//!            [--no-pickup] [--no-census] [--no-scaling] [--no-backlog]
//! mail-bench --report-only    rewrite the reports from bench/out/results.json, as its run did
//! ```
//!
//! Phases: timed drains of each system and workload (median of `--runs`), pickup latency at
//! half of each one's measured capacity, mail-worker with 1/2/4/8 processes on one Redis, and
//! mail-worker's RSS over a 1,000,000-job backlog. Writes `bench/out/summary.json`,
//! `bench/out/results.json` (every run) and `bench/out/results.md`; a full run also
//! rewrites `bench/results.md` and the charts in `docs/`.
//!
//! `bench/run` builds everything first; run it rather than this binary.

mod measure;
mod process;
mod procfs;
mod report;
mod sink;
mod systems;

use anyhow::Context;
use measure::{Drain, Env, Pickup};
use std::path::PathBuf;
use std::time::Duration;
use systems::{Paths, Setup, System, Workload};

/// What to run, from the command line (kept in `results.json` so `--report-only` can
/// rewrite the reports from it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// One run each, fewer jobs.
    pub quick: bool,
    /// Runs per measurement.
    pub runs: usize,
    /// Mails per drain.
    pub mail: u64,
    /// No-op jobs per drain.
    pub noop: u64,
    /// Systems to measure.
    #[serde(skip, default = "all_systems")]
    pub systems: Vec<System>,
    /// Longest wait for a quiet machine before each drain.
    pub wait_quiet: Duration,
    /// Measure pickup latency.
    pub pickup: bool,
    /// Count each system's requests to Redis per job (MONITOR).
    pub census: bool,
    /// Measure process scaling.
    pub scaling: bool,
    /// Measure the backlog RSS.
    pub backlog: bool,
    /// Seconds of steady load per pickup measurement.
    pub pickup_secs: u64,
    /// Jobs in the backlog.
    pub backlog_jobs: u64,
    /// Seconds the backlog drain is sampled.
    pub backlog_secs: u64,
}

fn all_systems() -> Vec<System> {
    System::ALL.to_vec()
}

impl Plan {
    fn parse(args: &[String]) -> anyhow::Result<Plan> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut plan = Plan {
            quick,
            runs: if quick { 1 } else { 3 },
            mail: if quick { 2_000 } else { 5_000 },
            noop: if quick { 20_000 } else { 50_000 },
            systems: System::ALL.to_vec(),
            wait_quiet: Duration::from_secs(if quick { 5 } else { 15 }),
            pickup: true,
            census: true,
            scaling: true,
            backlog: true,
            pickup_secs: if quick { 4 } else { 10 },
            backlog_jobs: 1_000_000,
            backlog_secs: if quick { 8 } else { 20 },
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--quick" | "--report-only" => {}
                "--runs" => plan.runs = value()?.parse()?,
                "--mail" => plan.mail = value()?.parse()?,
                "--noop" => plan.noop = value()?.parse()?,
                "--wait-quiet" => plan.wait_quiet = Duration::from_secs(value()?.parse()?),
                "--systems" => {
                    plan.systems = value()?
                        .split(',')
                        .map(|s| {
                            System::from_id(s).with_context(|| format!("unknown system {s:?}"))
                        })
                        .collect::<anyhow::Result<_>>()?;
                }
                "--no-pickup" => plan.pickup = false,
                "--no-census" => plan.census = false,
                "--no-scaling" => plan.scaling = false,
                "--no-backlog" => plan.backlog = false,
                other => anyhow::bail!("unknown argument {other:?} (see bench/run's header)"),
            }
        }
        anyhow::ensure!(plan.runs >= 1, "--runs must be at least 1");
        Ok(plan)
    }

    fn jobs(&self, w: Workload) -> u64 {
        match w {
            Workload::Mail => self.mail,
            Workload::Noop => self.noop,
        }
    }
}

/// The setup each system is compared in: concurrency 25 everywhere (mail is I/O-bound;
/// mail-worker's default), so the ratios compare the machinery, not a setting.
fn headline(system: System) -> Setup {
    Setup::new(system, Some(25))
}

fn log(msg: &str) {
    eprintln!("[mail-bench {}] {msg}", chrono_now());
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Everything measured in one invocation.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Results {
    /// What was run.
    pub plan: Option<Plan>,
    /// Every drain, every run.
    pub drains: Vec<Drain>,
    /// Pickup latencies.
    pub pickups: Vec<Pickup>,
    /// Requests to Redis per job, counted with MONITOR.
    pub census: Vec<measure::Census>,
    /// mail-worker scaling drains.
    pub scaling: Vec<Drain>,
    /// The backlog measurement.
    pub backlog: Option<measure::Backlog>,
    /// Versions and machine.
    pub about: serde_json::Value,
    /// Measurements that failed, with why.
    pub failures: Vec<String>,
    /// Minutes the whole run took.
    pub minutes: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Interrupted, the run future is dropped: every child (Redis, the sink, processors) is
    // killed on drop instead of being left behind.
    tokio::select! {
        r = run() => r,
        _ = stop_signal() => anyhow::bail!("interrupted: stopped every process this run started"),
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = Plan::parse(&args)?;
    let root = PathBuf::from(std::env::var("BENCH_ROOT").unwrap_or_else(|_| ".".into()));
    let root = std::fs::canonicalize(&root).context("BENCH_ROOT")?;
    let out = root.join("bench").join("out");
    std::fs::create_dir_all(&out)?;
    if args.iter().any(|a| a == "--report-only") {
        // Rewrite the reports from the last run (e.g. after editing bench/analysis.md).
        let path = out.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} (run the benchmark first)", path.display()))?;
        let res: Results = serde_json::from_str(&text).context("results.json")?;
        let plan = res.plan.clone().context("results.json has no plan")?;
        report::write(&root, &out, &plan, &res)?;
        log("reports rewritten from bench/out/results.json");
        return Ok(());
    }
    let peers = root.join("target").join("peers").join("release");
    let paths = Paths {
        mail_worker: root.join("target/release/mail-worker"),
        rusty: peers.join("peer-rusty-sidekiq"),
        apalis: peers.join("peer-apalis"),
        out: out.clone(),
    };
    for (system, p) in [
        (System::MailWorker, &paths.mail_worker),
        (System::RustySidekiq, &paths.rusty),
        (System::Apalis, &paths.apalis),
    ] {
        anyhow::ensure!(
            !plan.systems.contains(&system) || p.exists(),
            "{} is not built: run bench/run",
            p.display()
        );
    }
    let started = std::time::Instant::now();
    let redis = test_services::RedisServer::start();
    let redis_pid = redis.pid().context("redis-server has no pid")?;
    let conn = redis.conn().await;
    let sink = sink::Sink::start(&root, &out).await?;
    log(&format!(
        "redis-server on :{}, smtp-sink on :{}",
        redis.port(),
        sink.port
    ));
    let mut conn = conn;
    let own: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut conn)
        .await?;
    let own_addrs = own
        .split_whitespace()
        .filter_map(|kv| kv.strip_prefix("addr="))
        .map(str::to_owned)
        .collect();
    let mut env = Env {
        paths,
        redis,
        redis_pid,
        conn,
        sink,
        own_addrs,
    };
    let mut res = Results {
        plan: Some(plan.clone()),
        about: report::about(&root).await,
        ..Results::default()
    };

    // 1. Drains, interleaved run by run so a disturbance on the machine hits all alike.
    for run in 0..plan.runs {
        for &system in &plan.systems {
            for w in [Workload::Mail, Workload::Noop] {
                let setup = headline(system);
                let tag = format!("{}-{}-{run}", system.id(), w.id());
                match undisturbed(&mut env, &plan, &setup, w, plan.jobs(w), &tag).await {
                    Ok(d) => res.drains.push(d),
                    Err(e) => {
                        log(&format!("{tag}: FAILED: {e:#}"));
                        res.failures.push(format!("{tag}: {e:#}"));
                    }
                }
            }
        }
    }
    // The Rust peers at their own defaults too (once, fewer jobs: rusty-sidekiq defaults to
    // 2 workers here).
    if !plan.quick {
        for system in [System::RustySidekiq, System::Apalis] {
            if !plan.systems.contains(&system) {
                continue;
            }
            for w in [Workload::Mail, Workload::Noop] {
                let setup = Setup::new(system, None);
                let tag = format!("{}-default-{}", system.id(), w.id());
                match undisturbed(&mut env, &plan, &setup, w, plan.jobs(w) / 5, &tag).await {
                    Ok(d) => res.drains.push(d),
                    Err(e) => res.failures.push(format!("{tag}: {e:#}")),
                }
            }
        }
    }

    checkpoint(&out, &res, started);
    // 1b. Round trips per job: a short untimed drain of each with MONITOR watching.
    if plan.census {
        for &system in &plan.systems {
            for w in [Workload::Mail, Workload::Noop] {
                let setup = headline(system);
                let n = match w {
                    Workload::Mail => 500,
                    Workload::Noop => 2_000,
                };
                let tag = format!("census-{}-{}", system.id(), w.id());
                match measure::census(&mut env, &setup, w, n, &tag).await {
                    Ok(c) => {
                        log(&format!(
                            "{tag}: {:.2} requests per job ({})",
                            c.requests_per_job,
                            c.by_command
                                .iter()
                                .map(|(k, v)| format!("{k} {v:.2}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        res.census.push(c);
                    }
                    Err(e) => {
                        log(&format!("{tag}: FAILED: {e:#}"));
                        res.failures.push(format!("{tag}: {e:#}"));
                    }
                }
            }
        }
    }

    checkpoint(&out, &res, started);
    // 2. Pickup latency at half of each system's measured capacity.
    if plan.pickup {
        for &system in &plan.systems {
            for w in [Workload::Mail, Workload::Noop] {
                let setup = headline(system);
                let Some(cap) =
                    report::median(&report::runs_of(&res.drains, &setup.label(), w.id()))
                        .map(|d| d.jobs_per_s)
                else {
                    continue;
                };
                let rate = ((cap / 2.0).round() as u64).max(1);
                let tag = format!("pickup-{}-{}", system.id(), w.id());
                procfs::wait_for_quiet(plan.wait_quiet).await;
                log(&format!("{tag}: {rate} jobs/s for {} s", plan.pickup_secs));
                match measure::pickup(&mut env, &setup, w, rate, plan.pickup_secs, &tag).await {
                    Ok(p) => {
                        log(&format!(
                            "  p50 {:.3} ms, p99 {:.3} ms ({} samples)",
                            p.p50_ms, p.p99_ms, p.samples
                        ));
                        res.pickups.push(p);
                    }
                    Err(e) => {
                        log(&format!("{tag}: FAILED: {e:#}"));
                        res.failures.push(format!("{tag}: {e:#}"));
                    }
                }
            }
        }
    }

    checkpoint(&out, &res, started);
    // 3. mail-worker with 1, 2, 4, 8 processes on one Redis.
    if plan.scaling && plan.systems.contains(&System::MailWorker) {
        for run in 0..plan.runs {
            for processes in [1, 2, 4, 8] {
                for w in [Workload::Mail, Workload::Noop] {
                    let setup = Setup {
                        system: System::MailWorker,
                        concurrency: Some(25),
                        processes,
                    };
                    let tag = format!("scaling-{processes}p-{}-{run}", w.id());
                    match undisturbed(&mut env, &plan, &setup, w, plan.jobs(w) * 2, &tag).await {
                        Ok(d) => res.scaling.push(d),
                        Err(e) => res.failures.push(format!("{tag}: {e:#}")),
                    }
                }
            }
        }
    }

    checkpoint(&out, &res, started);
    // 4. RSS over a 1,000,000-job backlog.
    if plan.backlog && plan.systems.contains(&System::MailWorker) {
        procfs::wait_for_quiet(plan.wait_quiet).await;
        log(&format!(
            "backlog: {} MailSenderJobs queued, mail-worker sampled for {} s",
            plan.backlog_jobs, plan.backlog_secs
        ));
        match measure::backlog(&mut env, plan.backlog_jobs, plan.backlog_secs).await {
            Ok(b) => {
                log(&format!(
                    "  RSS {:.1}–{:.1} MB while draining {} jobs",
                    b.rss_min_mb, b.rss_max_mb, b.drained
                ));
                res.backlog = Some(b);
            }
            Err(e) => res.failures.push(format!("backlog: {e:#}")),
        }
    }

    res.minutes = started.elapsed().as_secs_f64() / 60.0;
    report::write(&root, &out, &plan, &res)?;
    log(&format!(
        "done in {:.1} min: bench/out/summary.json, bench/out/results.md{}",
        res.minutes,
        if plan.quick {
            ""
        } else {
            ", bench/results.md, docs/bench-*.svg"
        }
    ));
    if !res.failures.is_empty() {
        log(&format!(
            "{} measurement(s) failed: see results.md",
            res.failures.len()
        ));
    }
    Ok(())
}

/// Saves what has been measured so far to `results.json`, so that an interrupted run can
/// still be reported with `--report-only`.
fn checkpoint(out: &std::path::Path, res: &Results, started: std::time::Instant) {
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let mut v = serde_json::to_value(res).unwrap_or_default();
    v["minutes"] = serde_json::json!(minutes);
    if let Err(e) = std::fs::write(out.join("results.json"), v.to_string()) {
        log(&format!("could not save results.json: {e}"));
    }
}

/// One drain after waiting (up to `--wait-quiet`) for a quiet machine. It is not repeated
/// when other work disturbed it: on a machine shared by several developers that is the rule,
/// so each row reports the other load it ran with instead.
async fn undisturbed(
    env: &mut Env,
    plan: &Plan,
    setup: &Setup,
    w: Workload,
    n: u64,
    tag: &str,
) -> anyhow::Result<Drain> {
    let before = procfs::wait_for_quiet(plan.wait_quiet).await;
    let d = measure::drain(env, setup, w, n, tag).await?;
    log(&format!(
        "{tag}: {:>9.0} jobs/s, {:.3} CPU s/1000, {:.1} MB, other load {:.2} cores (before: {before:.2}, loadavg {:.2}){}",
        d.jobs_per_s,
        d.cpu_s_per_1000,
        d.rss_mb,
        d.other_cores,
        d.loadavg,
        if d.problems.is_empty() {
            String::new()
        } else {
            format!(" PROBLEMS: {}", d.problems.join("; "))
        }
    ));
    Ok(d)
}
