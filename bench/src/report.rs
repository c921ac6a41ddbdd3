//! Output: `summary.json`, `results.json`, `results.md` and the SVG charts.
//!
//! `results.md` is generated (tables, method); the hand-written analysis in
//! `bench/analysis.md` (findings, round trips per job and why, profiles) is appended to it,
//! so a new run never loses it.

use crate::measure::{Backlog, Census, Drain, Pickup};
use crate::systems::{System, Workload};
use crate::{Plan, Results};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;

/// Versions and the machine, for the header.
pub async fn about(root: &Path) -> Value {
    let run = |program: &str, args: &[&str]| {
        let mut c = tokio::process::Command::new(program);
        c.args(args).current_dir(root);
        async move {
            c.output()
                .await
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        }
    };
    let mut ruby = serde_json::Map::new();
    for v in test_services::SidekiqVersion::ALL {
        let program = if v.root().is_some() {
            "/usr/bin/ruby"
        } else {
            "ruby"
        };
        let out = v
            .command(program)
            .args(["-e", "require 'sidekiq'; require 'mail'; print RUBY_VERSION, ' ', Sidekiq::VERSION, ' ', Mail::VERSION::STRING"])
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        ruby.insert(System::Sidekiq(v).id().into(), json!(out));
    }
    json!({
        "git": run("git", &["rev-parse", "--short", "HEAD"]).await,
        "dirty": !run("git", &["status", "--porcelain", "--", "worker", "sidekiq-wire", "mail-protocol", "bench"]).await.is_empty(),
        "cpu": crate::procfs::cpu_model(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "redis": run("redis-server", &["--version"]).await,
        "ruby_sidekiq_mail": ruby,
        "peers": peer_versions(root),
        "loadavg_at_start": crate::procfs::loadavg1(),
    })
}

/// rusty-sidekiq and apalis versions from the peers' lockfiles.
fn peer_versions(root: &Path) -> Value {
    let find = |lock: &str, name: &str| -> String {
        let text = std::fs::read_to_string(root.join(lock)).unwrap_or_default();
        let needle = format!("name = \"{name}\"\nversion = \"");
        text.find(&needle)
            .and_then(|i| {
                text[i + needle.len()..]
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "?".into())
    };
    json!({
        "rusty-sidekiq": find("bench/peers/rusty-sidekiq/Cargo.lock", "rusty-sidekiq"),
        "apalis": find("bench/peers/apalis/Cargo.lock", "apalis"),
        "apalis-redis": find("bench/peers/apalis/Cargo.lock", "apalis-redis"),
        "lettre": find("bench/peers/apalis/Cargo.lock", "lettre"),
    })
}

/// Runs of one setup and workload.
pub fn runs_of<'a>(drains: &'a [Drain], setup: &str, workload: &str) -> Vec<&'a Drain> {
    drains
        .iter()
        .filter(|d| d.setup == setup && d.workload == workload)
        .collect()
}

fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Per-metric medians of some runs (the other fields from the median-throughput run).
pub fn median(runs: &[&Drain]) -> Option<Drain> {
    let mut sorted: Vec<&Drain> = runs.to_vec();
    sorted.sort_by(|a, b| a.jobs_per_s.total_cmp(&b.jobs_per_s));
    let mut m = (*sorted.get(sorted.len() / 2)?).clone();
    let f = |g: fn(&Drain) -> f64| med(runs.iter().map(|d| g(d)).collect());
    m.jobs_per_s = f(|d| d.jobs_per_s);
    m.wall_s = f(|d| d.wall_s);
    m.cpu_s_per_1000 = f(|d| d.cpu_s_per_1000);
    m.rss_mb = f(|d| d.rss_mb);
    m.redis_cores = f(|d| d.redis_cores);
    m.sink_cores = f(|d| d.sink_cores);
    m.worker_cores = f(|d| d.worker_cores);
    m.machine_cores = f(|d| d.machine_cores);
    m.other_cores = f(|d| d.other_cores);
    m.loadavg = f(|d| d.loadavg);
    m.redis_writes_per_job = f(|d| d.redis_writes_per_job);
    m.problems = runs.iter().flat_map(|d| d.problems.clone()).collect();
    Some(m)
}

/// A median row with its runs.
struct Row {
    m: Drain,
    runs: Vec<f64>,
    pickup: Option<Pickup>,
    /// Runs left out of the median because an after-run check failed, with why.
    excluded: Vec<String>,
}

fn rows(res: &Results, drains: &[Drain], workload: &str) -> Vec<Row> {
    let mut labels: Vec<String> = Vec::new();
    for d in drains.iter().filter(|d| d.workload == workload) {
        if !labels.contains(&d.setup) {
            labels.push(d.setup.clone());
        }
    }
    labels
        .iter()
        .filter_map(|l| {
            let runs = runs_of(drains, l, workload);
            // A run whose checks failed did not drain what it claims: it is left out of the
            // median when a clean run exists (and reported below the table).
            let clean: Vec<&Drain> = runs
                .iter()
                .copied()
                .filter(|d| d.problems.is_empty())
                .collect();
            let basis = if clean.is_empty() { &runs } else { &clean };
            let m = median(basis)?;
            let excluded = if clean.is_empty() {
                Vec::new()
            } else {
                runs.iter()
                    .filter(|d| !d.problems.is_empty())
                    .map(|d| format!("{:.0} jobs/s: {}", d.jobs_per_s, d.problems.join("; ")))
                    .collect()
            };
            Some(Row {
                excluded,
                runs: runs.iter().map(|d| d.jobs_per_s).collect(),
                pickup: res
                    .pickups
                    .iter()
                    .find(|p| &p.setup == l && p.workload == workload)
                    .cloned(),
                m,
            })
        })
        .collect()
}

/// The MONITOR census of a setup and workload.
fn census_of<'a>(res: &'a Results, setup: &str, workload: &str) -> Option<&'a Census> {
    res.census
        .iter()
        .find(|c| c.setup == setup && c.workload == workload)
}

fn headline_row<'a>(rows: &'a [Row], system: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.m.system == system && r.m.concurrency == Some(25) && r.m.processes == 1)
}

/// Writes every output.
///
/// # Errors
/// Files cannot be written.
pub fn write(root: &Path, out: &Path, plan: &Plan, res: &Results) -> anyhow::Result<()> {
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(res)?)?;
    let mail = rows(res, &res.drains, "mail");
    let noop = rows(res, &res.drains, "noop");
    // summary.json: one entry per system and workload at the compared setting.
    let mut summary = Vec::new();
    for (w, rs) in [("mail", &mail), ("noop", &noop)] {
        for r in rs.iter() {
            let headline = r.m.concurrency == Some(25);
            summary.push(json!({
                "system": r.m.system,
                "workload": w,
                "jobs_per_s": round(r.m.jobs_per_s, 1),
                "cpu_s_per_1000": round(r.m.cpu_s_per_1000, 4),
                "rss_mb": round(r.m.rss_mb, 1),
                "p50_pickup_ms": r.pickup.as_ref().map(|p| round(p.p50_ms, 3)),
                "p99_pickup_ms": r.pickup.as_ref().map(|p| round(p.p99_ms, 3)),
                "pickup_rate": r.pickup.as_ref().map(|p| p.rate),
                "setup": r.m.setup,
                "compared": headline,
                "jobs": r.m.jobs,
                "runs": r.runs.len(),
                "runs_jobs_per_s": r.runs.iter().map(|v| round(*v, 1)).collect::<Vec<_>>(),
                "redis_cores": round(r.m.redis_cores, 2),
                "redis_writes_per_job": round(r.m.redis_writes_per_job, 2),
                "redis_requests_per_job": census_of(res, &r.m.setup, w).map(|c| round(c.requests_per_job, 2)),
                "redis_commands_per_job": r.m.redis_commands_per_job,
                "other_load_cores": round(r.m.other_cores, 2),
                "loadavg": round(r.m.loadavg, 2),
                "problems": r.m.problems,
                "excluded_runs": r.excluded,
            }));
        }
    }
    let summary_doc = Value::Array(summary);
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary_doc)?,
    )?;

    let md = markdown(root, plan, res, &mail, &noop);
    std::fs::write(out.join("results.md"), &md)?;
    let systems_svg = chart_systems(&mail, &noop);
    std::fs::write(out.join("bench-systems.svg"), &systems_svg)?;
    let scaling_svg = (!res.scaling.is_empty()).then(|| {
        chart_scaling(
            &rows(res, &res.scaling, "mail"),
            &rows(res, &res.scaling, "noop"),
        )
    });
    if let Some(s) = &scaling_svg {
        std::fs::write(out.join("bench-scaling.svg"), s)?;
    }
    let backlog_svg = res.backlog.as_ref().map(chart_backlog);
    if let Some(s) = &backlog_svg {
        std::fs::write(out.join("bench-backlog.svg"), s)?;
    }
    if !plan.quick {
        std::fs::write(root.join("bench/results.md"), &md)?;
        std::fs::write(root.join("docs/bench-systems.svg"), &systems_svg)?;
        if let Some(s) = scaling_svg {
            std::fs::write(root.join("docs/bench-scaling.svg"), s)?;
        }
        if let Some(s) = backlog_svg {
            std::fs::write(root.join("docs/bench-backlog.svg"), s)?;
        }
    }
    Ok(())
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn n0(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn opt_ms(p: &Option<Pickup>, f: fn(&Pickup) -> f64) -> String {
    p.as_ref().map_or("–".into(), |p| {
        let v = f(p);
        if v < 10.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.0}")
        }
    })
}

fn markdown(root: &Path, plan: &Plan, res: &Results, mail: &[Row], noop: &[Row]) -> String {
    let a = &res.about;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# mail-worker against Ruby Sidekiq 8.1 / 7.3 / 6.4 and the Rust peers: benchmark results\n"
    );
    let _ = writeln!(
        s,
        "Generated by `bench/run{}` at commit `{}`{} on {} × {}; {}. Ruby / Sidekiq / mail gem: 8.1 root `{}`, 7.3 root `{}`, native `{}`. Peers: rusty-sidekiq {}, apalis {} + apalis-redis {}, lettre {}. Median of {} run(s); load average at the start {:.2}. Whole run {:.1} min. Raw runs: `bench/out/results.json`.\n",
        if plan.quick { " --quick" } else { "" },
        a["git"].as_str().unwrap_or("?"),
        if a["dirty"].as_bool().unwrap_or(false) {
            " (with uncommitted changes)"
        } else {
            ""
        },
        a["cores"],
        a["cpu"].as_str().unwrap_or("?"),
        a["redis"]
            .as_str()
            .unwrap_or("?")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        a["ruby_sidekiq_mail"]["sidekiq-8"].as_str().unwrap_or("?"),
        a["ruby_sidekiq_mail"]["sidekiq-7"].as_str().unwrap_or("?"),
        a["ruby_sidekiq_mail"]["sidekiq-6.4"]
            .as_str()
            .unwrap_or("?"),
        a["peers"]["rusty-sidekiq"].as_str().unwrap_or("?"),
        a["peers"]["apalis"].as_str().unwrap_or("?"),
        a["peers"]["apalis-redis"].as_str().unwrap_or("?"),
        a["peers"]["lettre"].as_str().unwrap_or("?"),
        plan.runs,
        a["loadavg_at_start"].as_f64().unwrap_or(0.0),
        res.minutes,
    );
    let _ = writeln!(
        s,
        "**The machine was shared**: other developers' builds and tests ran on the same 2 cores. Each row shows the other load during its runs (busy cores not used by the system under test, Redis or the sink) and the load average; read the ratios with that in mind.\n"
    );
    for (title, w, rows, n) in [
        ("1. Mail drain", Workload::Mail, mail, plan.mail),
        (
            "2. No-op drain (the queue machinery alone)",
            Workload::Noop,
            noop,
            plan.noop,
        ),
    ] {
        let _ = writeln!(s, "## {title}: {} jobs\n", n0(n as f64));
        let _ = writeln!(
            s,
            "| system, setting | jobs/s | runs | CPU s / 1,000 jobs | peak RSS MB | pickup p50 / p99 ms (at half load) | Redis cores | Redis requests / job | other load (cores) · loadavg |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
        for r in rows.iter() {
            let _ = writeln!(
                s,
                "| {}{} | {} | {} | {:.3} | {:.1} | {} / {} | {:.2} | {} | {:.2} · {:.1} |",
                r.m.setup,
                if r.m.problems.is_empty() { "" } else { " ⚠" },
                n0(r.m.jobs_per_s),
                r.runs.iter().map(|v| n0(*v)).collect::<Vec<_>>().join(", "),
                r.m.cpu_s_per_1000,
                r.m.rss_mb,
                opt_ms(&r.pickup, |p| p.p50_ms),
                opt_ms(&r.pickup, |p| p.p99_ms),
                r.m.redis_cores,
                census_of(res, &r.m.setup, w.id())
                    .map_or("–".into(), |c| format!("{:.2}", c.requests_per_job)),
                r.m.other_cores,
                r.m.loadavg,
            );
        }
        s.push('\n');
        let problems: Vec<String> = rows
            .iter()
            .filter(|r| !r.m.problems.is_empty())
            .map(|r| format!("- ⚠ {}: {}", r.m.setup, r.m.problems.join("; ")))
            .chain(rows.iter().flat_map(|r| {
                r.excluded.iter().map(move |e| {
                    format!(
                        "- {}: one run left out of the median, its checks failed ({e})",
                        r.m.setup
                    )
                })
            }))
            .collect();
        if !problems.is_empty() {
            let _ = writeln!(s, "{}\n", problems.join("\n"));
        }
        let _ = w;
    }
    // Ratios and targets: of the medians, and within each run (the systems of one run ran
    // minutes apart, so a disturbance hits the pair alike more often than the medians).
    let ratio = |rows: &[Row], a: &str, b: &str| -> Option<f64> {
        Some(headline_row(rows, a)?.m.jobs_per_s / headline_row(rows, b)?.m.jobs_per_s)
    };
    let headline_runs = |system: &str, w: &str| -> Vec<&Drain> {
        res.drains
            .iter()
            .filter(|d| {
                d.system == system
                    && d.workload == w
                    && d.concurrency == Some(25)
                    && d.processes == 1
            })
            .collect()
    };
    let per_run = |w: &str, a: &str, b: &str| -> Vec<Option<f64>> {
        headline_runs(a, w)
            .iter()
            .zip(headline_runs(b, w))
            .map(|(x, y)| {
                (x.problems.is_empty() && y.problems.is_empty())
                    .then(|| x.jobs_per_s / y.jobs_per_s)
            })
            .collect()
    };
    let _ = writeln!(
        s,
        "## Targets (rows at concurrency 25)\n\n\"of the medians\" divides the medians of the tables above; \"per run\" divides the two systems' drains of the same run (run 1, 2, …; – where a run failed its checks).\n"
    );
    let _ = writeln!(
        s,
        "| target | of the medians | per run | met |\n|---|---:|---:|:---:|"
    );
    let mut target = |name: &str,
                      v: Option<f64>,
                      runs: Vec<Option<f64>>,
                      ok: &dyn Fn(f64) -> bool,
                      fmt: &dyn Fn(f64) -> String| {
        let valid: Vec<f64> = runs.iter().flatten().copied().collect();
        let met_runs = valid.iter().filter(|v| ok(**v)).count();
        let met = match v {
            None => "–".to_owned(),
            Some(v) if ok(v) && met_runs == valid.len() => "yes".into(),
            Some(v) if ok(v) => format!("yes (in {met_runs} of {} runs)", valid.len()),
            Some(_) if met_runs > 0 => {
                format!("**no** (yes in {met_runs} of {} runs)", valid.len())
            }
            Some(_) => "**no**".into(),
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {met} |",
            v.map_or("–".into(), fmt),
            runs.iter()
                .map(|r| r.map_or("–".into(), fmt))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let x = |v: f64| format!("{v:.1}×");
    for (name, w, rows, b, min) in [
        ("mail: ≥ 20× Sidekiq 8.1", "mail", mail, "sidekiq-8", 20.0),
        (
            "mail: ahead of rusty-sidekiq",
            "mail",
            mail,
            "rusty-sidekiq",
            1.0,
        ),
        ("mail: ahead of apalis", "mail", mail, "apalis", 1.0),
        (
            "no-op: ≥ 5× Sidekiq 8.1 (with reliable fetch)",
            "noop",
            noop,
            "sidekiq-8",
            5.0,
        ),
        (
            "no-op: ahead of rusty-sidekiq",
            "noop",
            noop,
            "rusty-sidekiq",
            1.0,
        ),
        ("no-op: ahead of apalis", "noop", noop, "apalis", 1.0),
    ] {
        let ok = move |v: f64| if min > 1.0 { v >= min } else { v > min };
        target(
            name,
            ratio(rows, "mail-worker", b),
            per_run(w, "mail-worker", b),
            &ok,
            &x,
        );
    }
    let rss = headline_row(mail, "mail-worker").map(|r| r.m.rss_mb);
    target(
        "mail-worker peak RSS ≤ 10 MB in the mail drain",
        rss,
        headline_runs("mail-worker", "mail")
            .iter()
            .map(|d| Some(d.rss_mb))
            .collect(),
        &|v| v <= 10.0,
        &|v| format!("{v:.1} MB"),
    );
    if let Some(b) = &res.backlog {
        target(
            &format!(
                "RSS flat over a {}-job backlog (max − min after 1 s)",
                n0(b.queued as f64)
            ),
            Some(b.rss_max_mb - b.rss_min_mb),
            Vec::new(),
            &|v| v <= 2.0,
            &|v| format!("{v:.1} MB"),
        );
    }
    s.push('\n');

    // Redis requests per job.
    let _ = writeln!(
        s,
        "## Redis round trips per job\n\nRequests = top-level commands the processor's clients sent, counted with `MONITOR` over a separate untimed drain (500 mails, 2,000 no-op jobs), per job: each waits for its own reply, so it is one round trip for the job even where a client pipelines or multiplexes several (which the write calls show: Redis sent fewer, larger writes). Commands = every command Redis ran in the timed drain (`INFO commandstats`), including those inside Lua scripts: the work Redis does per job.\n"
    );
    for (w, rows) in [("mail", mail), ("noop", noop)] {
        let _ = writeln!(
            s,
            "**{w}**\n\n| system, setting | requests / job | requests by command | Redis write calls / job | commands / job (incl. inside Lua) |\n|---|---:|---|---:|---|"
        );
        for r in rows.iter() {
            let list = |m: &std::collections::BTreeMap<String, f64>| {
                let mut cmds: Vec<(&String, &f64)> = m.iter().collect();
                cmds.sort_by(|a, b| b.1.total_cmp(a.1));
                cmds.iter()
                    .map(|(k, v)| format!("{k} {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let census = census_of(res, &r.m.setup, w);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {} |",
                r.m.setup,
                census.map_or("–".into(), |c| format!("{:.2}", c.requests_per_job)),
                census.map_or("–".into(), |c| list(&c.by_command)),
                r.m.redis_writes_per_job,
                list(&r.m.redis_commands_per_job)
            );
        }
        s.push('\n');
    }

    if !res.scaling.is_empty() {
        let _ = writeln!(
            s,
            "## 3. Scaling: mail-worker processes on one Redis (concurrency 25 each, {} mails / {} no-op jobs)\n",
            n0(plan.mail as f64 * 2.0),
            n0(plan.noop as f64 * 2.0)
        );
        let _ = writeln!(s, "![scaling](../docs/bench-scaling.svg)\n");
        let _ = writeln!(
            s,
            "| workload | processes | jobs/s | workers' cores | Redis cores | sink cores | machine busy (of {}) | other load | Redis write calls / job |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            a["cores"]
        );
        for w in ["mail", "noop"] {
            for r in rows(res, &res.scaling, w) {
                let _ = writeln!(
                    s,
                    "| {w} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
                    r.m.processes,
                    n0(r.m.jobs_per_s),
                    r.m.worker_cores,
                    r.m.redis_cores,
                    r.m.sink_cores,
                    r.m.machine_cores,
                    r.m.other_cores,
                    r.m.redis_writes_per_job
                );
            }
        }
        s.push('\n');
    }
    if let Some(b) = &res.backlog {
        let _ = writeln!(s, "## 4. RSS with a {}-job backlog\n", n0(b.queued as f64));
        let _ = writeln!(s, "![backlog RSS](../docs/bench-backlog.svg)\n");
        let _ = writeln!(
            s,
            "{} MailSenderJobs queued (Redis used {:.0} MB), one mail-worker (concurrency 25) started and its VmRSS sampled every 200 ms for {:.0} s while it delivered {} of them: RSS {:.1}–{:.1} MB after the first second, peak (VmHWM) {:.1} MB.\n",
            n0(b.queued as f64),
            b.redis_used_mb,
            b.secs,
            n0(b.drained as f64),
            b.rss_min_mb,
            b.rss_max_mb,
            b.peak_mb
        );
    }
    let _ = writeln!(s, "## Pickup latency measurement\n");
    let _ = writeln!(
        s,
        "| system, setting | offered jobs/s | samples | p50 ms | p99 ms | max ms | how | loadavg |\n|---|---:|---:|---:|---:|---:|---|---:|"
    );
    for p in &res.pickups {
        let _ = writeln!(
            s,
            "| {} {} | {} | {} | {:.3} | {:.3} | {:.1} | {} | {:.1} |",
            p.setup,
            p.workload,
            n0(p.rate as f64),
            p.samples,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.method,
            p.loadavg
        );
    }
    s.push('\n');
    if !res.failures.is_empty() {
        let _ = writeln!(s, "## Measurements that failed\n");
        for f in &res.failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Method\n");
    let _ = writeln!(
        s,
        "- One private redis-server (no persistence) and one postfix `smtp-sink` for everything; a fresh processor process per measurement. Jobs are built as `push_bulk` builds them into a private list while the processor idles, then one `RENAME` onto `queue:default` hands the whole batch over and the clock starts (apalis: its peer pushes with its own `push_bulk`, its active list is parked with `RENAME` and given back the same way, with its wake-up signal)."
    );
    let _ = writeln!(
        s,
        "- A mail drain ends when the sink has counted N new messages; a no-op drain when the queue (and mail-worker's in-progress lists) are empty, or, for the Rust peers, when the peer has counted N finished jobs. Afterwards: `stat:processed` = N and nothing failed or left in Redis (Ruby, mail-worker), the peer's own count = N (rusty-sidekiq writes no stats), the sink's count = N; a row marked ⚠ failed a check."
    );
    let _ = writeln!(
        s,
        "- CPU = utime + stime of the processor process(es) over the window; peak RSS = VmHWM. Redis write calls / job = redis-server's write system calls (`/proc/<pid>/io` syscw) over the drain, less this tool's own polls, divided by N: replies to pipelined or multiplexed requests share one write, so this is below the round trips."
    );
    let _ = writeln!(
        s,
        "- Every system runs at concurrency 25 (mail-worker's default; Ruby `-c 25`, rusty-sidekiq `num_workers(25)` with a bb8 pool as large, apalis `.concurrency(25)`); the Rust peers also once at their own defaults. Ruby and rusty-sidekiq connect to the sink once per mail (the mail gem, as ActionMailer does) or through lettre's pool (apalis, rusty-sidekiq), mail-worker through its own pool with TCP_NODELAY."
    );
    let _ = writeln!(
        s,
        "- Pickup latency: a producer offers half the system's measured capacity for {} s, one `LPUSH` per job; see the table above for how each start is observed. The first 5% of jobs are not counted.",
        plan.pickup_secs
    );
    let _ = writeln!(
        s,
        "- Before each measurement the tool waits (up to {} s) for the machine to be quiet (under 0.3 busy cores); it is not repeated when other work disturbed it (on a machine shared by several developers that is the rule): each row reports the other load it ran with.\n",
        plan.wait_quiet.as_secs()
    );
    let analysis = std::fs::read_to_string(root.join("bench/analysis.md")).unwrap_or_default();
    if !analysis.is_empty() {
        s.push_str(&analysis);
    }
    s
}

const COLORS: [&str; 6] = [
    "#c0392b", "#2c3e50", "#34495e", "#7f8c8d", "#d68910", "#1e8449",
];

/// Horizontal bars: jobs/s per system, mail and no-op side by side (log scale).
fn chart_systems(mail: &[Row], noop: &[Row]) -> String {
    let (w, h) = (760.0, 430.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">jobs/s at concurrency 25 on 2 shared cores (log scale)</text>"#,
        w / 2.0
    );
    let systems: Vec<&str> = System::ALL.iter().map(|s| s.id()).collect();
    let (x0, x1) = (130.0, w - 90.0);
    let (lo, hi) = (1.0f64, 1_000_000.0f64);
    let x = |v: f64| x0 + (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) * (x1 - x0);
    for e in 0..=6 {
        let v = 10f64.powi(e);
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="40" y2="{1}" stroke="#e5e5e5"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(v),
            h - 40.0,
            h - 24.0,
            n0(v)
        );
    }
    let mut y = 50.0;
    for (title, rows) in [("mail", mail), ("no-op", noop)] {
        let _ = write!(
            s,
            r#"<text x="10" y="{:.1}" font-weight="bold">{title}</text>"#,
            y + 10.0
        );
        y += 18.0;
        for (i, id) in systems.iter().enumerate() {
            let Some(r) = headline_row(rows, id) else {
                continue;
            };
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{id}</text><rect x="{x0}" y="{:.1}" width="{:.1}" height="16" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                x0 - 6.0,
                y + 12.0,
                y,
                (x(r.m.jobs_per_s) - x0).max(1.0),
                COLORS[i],
                x(r.m.jobs_per_s) + 4.0,
                y + 12.0,
                n0(r.m.jobs_per_s)
            );
            y += 20.0;
        }
        y += 12.0;
    }
    s.push_str("</svg>\n");
    s
}

/// jobs/s and Redis cores by number of mail-worker processes.
fn chart_scaling(mail: &[Row], noop: &[Row]) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 400.0, 70.0, 70.0, 40.0, 50.0);
    let ymax = noop
        .iter()
        .chain(mail.iter())
        .map(|r| r.m.jobs_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let xs = [1.0f64, 2.0, 4.0, 8.0];
    let x = |p: f64| ml + 30.0 + (p.log2() / 3.0) * (w - ml - mr - 60.0);
    let y = |v: f64| mt + (1.0 - v / ymax) * (h - mt - mb);
    let yr = |c: f64| mt + (1.0 - c / 2.0) * (h - mt - mb);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">mail-worker processes on one Redis (2 shared cores)</text>"#,
        w / 2.0
    );
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{ml}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            w - mr,
            y(v),
            ml - 6.0,
            y(v) + 4.0,
            n0(v)
        );
        let c = 2.0 * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" fill="#888">{c:.1}</text>"##,
            w - mr + 6.0,
            yr(c) + 4.0
        );
    }
    for p in xs {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{p}</text>"#,
            x(p),
            h - mb + 18.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">processes (log scale)</text><text x="18" y="{}" transform="rotate(-90 18 {})" text-anchor="middle">jobs/s</text><text x="{}" y="{}" transform="rotate(90 {} {})" text-anchor="middle" fill="#888">Redis CPU (cores, dashed)</text>"##,
        (ml + w - mr) / 2.0,
        h - 12.0,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0,
        w - 20.0,
        (mt + h - mb) / 2.0,
        w - 20.0,
        (mt + h - mb) / 2.0
    );
    for (rows, color, name) in [(mail, "#c0392b", "mail"), (noop, "#2c3e50", "no-op")] {
        let pts: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.m.processes as f64), y(r.m.jobs_per_s)))
            .collect();
        let red: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.m.processes as f64), yr(r.m.redis_cores)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"/><polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5" stroke-dasharray="5 4"/>"#,
            pts.join(" "),
            red.join(" ")
        );
        for r in rows {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{color}">{}</text>"#,
                x(r.m.processes as f64),
                y(r.m.jobs_per_s),
                x(r.m.processes as f64),
                y(r.m.jobs_per_s) - 8.0,
                n0(r.m.jobs_per_s)
            );
        }
        if let Some(last) = rows.last() {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{color}">{name}</text>"#,
                x(last.m.processes as f64) + 8.0,
                y(last.m.jobs_per_s) + 16.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// mail-worker's RSS over time while it drains the backlog.
fn chart_backlog(b: &Backlog) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 300.0, 60.0, 20.0, 40.0, 45.0);
    let ymax = (b.rss_max_mb * 1.5).max(12.0).ceil();
    let tmax = b.secs.max(1.0);
    let x = |t: f64| ml + t / tmax * (w - ml - mr);
    let y = |v: f64| mt + (1.0 - v / ymax) * (h - mt - mb);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">mail-worker RSS with {} jobs queued ({} delivered meanwhile)</text>"#,
        w / 2.0,
        n0(b.queued as f64),
        n0(b.drained as f64)
    );
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{ml}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{v:.0} MB</text>"##,
            w - mr,
            y(v),
            ml - 6.0,
            y(v) + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{ml}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{2}" y="{3:.1}" text-anchor="end" fill="#c0392b">10 MB target</text>"##,
        w - mr,
        y(10.0),
        w - mr - 4.0,
        y(10.0) - 5.0
    );
    let pts: Vec<String> = b
        .samples
        .iter()
        .map(|(t, r)| format!("{:.1},{:.1}", x(*t), y(*r)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#2c3e50" stroke-width="2"/><text x="{}" y="{}" text-anchor="middle">seconds since start</text>"##,
        pts.join(" "),
        (ml + w - mr) / 2.0,
        h - 10.0
    );
    s.push_str("</svg>\n");
    s
}
