//! `mail-bench`: the Rust side of `bench/run`.
//!
//! - `stage KEY CLASS COUNT`: builds `COUNT` jobs exactly as `Client::push_bulk` would
//!   (queue `default`, one `enqueued_at`) but `LPUSH`es them, 1,000 at a time, into the
//!   private list `KEY`; the orchestrator then `RENAME`s it onto `queue:default` so that a
//!   running processor sees the whole batch at one instant.
//! - `push-bulk CLASS COUNT`: times building `COUNT` jobs plus `sidekiq_wire::Client::push_bulk`
//!   into `queue:default`, and prints one JSON line: wall seconds, CPU seconds of this process
//!   during the call, peak RSS.
//!
//! `REDIS_URL` selects the server. `CLASS` is `MailSenderJob` or `NoopJob`.

use anyhow::{Context, bail};
use mail_protocol::MailSenderArgs;
use serde_json::json;
use sidekiq_wire::{Client, Job, Timestamp};
use std::time::Instant;

/// The same recipients for every processor: `user<i>@example.test`, "User <i>".
fn build_jobs(class: &str, count: usize) -> anyhow::Result<Vec<Job>> {
    (0..count)
        .map(|i| match class {
            "MailSenderJob" => Ok(MailSenderArgs {
                to: format!("user{i}@example.test"),
                name: Some(format!("User {i}")),
                email_id: None,
                mail_job_id: None,
                instance: None,
                simulate_error: false,
            }
            .into_job("default")),
            "NoopJob" => Ok(Job::new("NoopJob", vec![json!(i)])),
            other => bail!("unknown class {other:?}: use MailSenderJob or NoopJob"),
        })
        .collect()
}

/// utime + stime of this process, in seconds (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// VmHWM of this process in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn stage(url: &str, key: &str, class: &str, count: usize) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let now = Timestamp::now();
    let payloads: Vec<String> = build_jobs(class, count)?
        .into_iter()
        .map(|mut job| {
            job.ensure_created_at(now);
            job.set_enqueued_at(now);
            job.to_json_string()
        })
        .collect();
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut conn)
        .await?;
    for chunk in payloads.chunks(sidekiq_wire::client::BULK_CHUNK) {
        redis::cmd("LPUSH")
            .arg(key)
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    println!("{}", json!({"staged": payloads.len(), "key": key}));
    Ok(())
}

async fn push_bulk(url: &str, class: &str, count: usize) -> anyhow::Result<()> {
    let client = Client::connect(url).await?;
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let jobs = build_jobs(class, count)?;
    let jids = client.push_bulk(jobs).await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    anyhow::ensure!(jids.len() == count, "pushed {} of {count}", jids.len());
    println!(
        "{}",
        json!({"jobs": count, "wall_s": wall, "cpu_s": cpu, "peak_rss_kb": peak_rss_kb()})
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL").context("REDIS_URL")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |s: &str| s.parse::<usize>().with_context(|| format!("count {s:?}"));
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["stage", key, class, n] => stage(&url, key, class, count(n)?).await,
        ["push-bulk", class, n] => push_bulk(&url, class, count(n)?).await,
        _ => bail!("usage: mail-bench stage KEY CLASS COUNT | mail-bench push-bulk CLASS COUNT"),
    }
}
