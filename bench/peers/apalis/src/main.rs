//! Benchmark peer: the seed's `MailSenderJob` and a `NoopJob` on apalis 1.0 with
//! apalis-redis, written the way apalis' README shows: plain async handler functions, a
//! `RedisStorage` per task type at its default config, `WorkerBuilder` with
//! `.parallelize(tokio::spawn)`, and `.concurrency(n)` when `PEER_CONCURRENCY` is set
//! (unset: no limit, apalis' default). An idle apalis-redis worker fetches again only when
//! woken; pushes are filed as scheduled tasks and publish nothing, so without a poll strategy
//! it waits for its next heartbeat (30 s). The worker therefore polls every `APALIS_POLL_MS`
//! (10) milliseconds while idle, through `BackendExt::poll_with_strategy` with [`Rearming`]:
//! apalis-core's own `IntervalStrategy` replaces a fired timer without polling the new one,
//! so when a fetch outlasts the interval nothing is left to wake the worker and it again
//! waits for its heartbeat (seen here on every start under load). apalis has its own data
//! model, so this binary also enqueues:
//!
//! ```text
//! peer-apalis work  mail|noop             run a worker until SIGTERM
//! peer-apalis push  mail|noop N           push N tasks, then park them (see below)
//! peer-apalis produce mail|noop RATE SECS steady load: RATE tasks/s, one push each
//! ```
//!
//! `push` leaves the batch parked aside: apalis-redis files pushed tasks in its scheduled set,
//! due at once, and a fetch promotes them to the active list; `push` promotes them itself
//! into `<active list>:staged` and prints the pair, so `mail-bench` can hand the whole batch
//! to an idle worker at one instant (`RENAME` back, then signal), as it does for the Sidekiq
//! systems.
//! Tasks pushed by `produce` carry their enqueue time; the worker records enqueue → start
//! per task (`BENCH_PICKUP_OUT`), since apalis fetches tasks in batches ahead of running them.

use anyhow::{Context, bail};
use apalis::prelude::*;
use apalis_redis::RedisStorage;
use bench_mail_job::{Completion, MailArgs, Mailer, Pickups, unix_micros};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A mail to send; `enq_us` is set by `produce` (epoch microseconds at push).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MailTask {
    #[serde(flatten)]
    args: MailArgs,
    #[serde(default)]
    enq_us: Option<u64>,
}

/// A task that does nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoopTask {
    i: u64,
    #[serde(default)]
    enq_us: Option<u64>,
}

/// What the handlers share.
struct State {
    mailer: Mailer,
    done: Completion,
    pickups: Pickups,
}

async fn send_mail(task: MailTask, state: Data<Arc<State>>) -> Result<(), BoxDynError> {
    if let Some(enq) = task.enq_us {
        state.pickups.started(enq);
    }
    let result = state.mailer.send(&task.args).await;
    state.done.finished(result.is_ok());
    result.map_err(|e| e.into())
}

async fn noop(task: NoopTask, state: Data<Arc<State>>) -> Result<(), BoxDynError> {
    if let Some(enq) = task.enq_us {
        state.pickups.started(enq);
    }
    state.done.finished(true);
    Ok(())
}

fn mail_task(i: u64, enq_us: Option<u64>) -> MailTask {
    MailTask {
        args: MailArgs {
            to: format!("user{i}@example.test"),
            name: Some(format!("User {i}")),
        },
        enq_us,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(bench_mail_job::log_level())
        .with_ansi(false)
        .init();
    let url = bench_mail_job::env_or("REDIS_URL", "redis://127.0.0.1:6379/0");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let conn = apalis_redis::connect(url.as_str()).await?;
    let num = |s: &str| s.parse::<u64>().with_context(|| format!("number {s:?}"));
    match argv.as_slice() {
        ["work", "mail"] => work(RedisStorage::<MailTask>::new(conn), send_mail).await,
        ["work", "noop"] => work(RedisStorage::<NoopTask>::new(conn), noop).await,
        ["push", "mail", n] => {
            let tasks = (0..num(n)?).map(|i| mail_task(i, None)).collect();
            push(RedisStorage::<MailTask>::new(conn), tasks).await
        }
        ["push", "noop", n] => {
            let tasks = (0..num(n)?).map(|i| NoopTask { i, enq_us: None }).collect();
            push(RedisStorage::<NoopTask>::new(conn), tasks).await
        }
        ["produce", "mail", rate, secs] => {
            produce(
                RedisStorage::<MailTask>::new(conn),
                num(rate)?,
                num(secs)?,
                |i| mail_task(i, Some(unix_micros())),
            )
            .await
        }
        ["produce", "noop", rate, secs] => {
            produce(
                RedisStorage::<NoopTask>::new(conn),
                num(rate)?,
                num(secs)?,
                |i| NoopTask {
                    i,
                    enq_us: Some(unix_micros()),
                },
            )
            .await
        }
        _ => bail!(
            "usage: peer-apalis work mail|noop | push mail|noop N | produce mail|noop RATE SECS"
        ),
    }
}

type Storage<T> = RedisStorage<T, redis::aio::ConnectionManager>;

/// Runs one worker on `storage` until SIGTERM.
async fn work<T, F, Fut>(storage: Storage<T>, handler: F) -> anyhow::Result<()>
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
    F: Fn(T, Data<Arc<State>>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    let state = Arc::new(State {
        mailer: Mailer::from_env()?,
        done: Completion::from_env(),
        pickups: Pickups::from_env(),
    });
    let name = format!("peer-apalis-{}", std::process::id());
    let concurrency = bench_mail_job::concurrency()?;
    let poll = Duration::from_millis(
        bench_mail_job::env_or("APALIS_POLL_MS", "10")
            .parse()
            .context("APALIS_POLL_MS")?,
    );
    println!(
        "{}",
        serde_json::json!({"event": "started", "concurrency": concurrency})
    );
    let stop = async {
        stop_signal().await;
        Ok::<(), std::io::Error>(())
    };
    let result = match concurrency {
        Some(n) => {
            WorkerBuilder::new(name)
                .backend(storage.poll_with_strategy(Rearming::new(poll)))
                .data(state.clone())
                .concurrency(n)
                .parallelize(tokio::spawn)
                .build(handler)
                .run_until(stop)
                .await
        }
        None => {
            WorkerBuilder::new(name)
                .backend(storage.poll_with_strategy(Rearming::new(poll)))
                .data(state.clone())
                .parallelize(tokio::spawn)
                .build(handler)
                .run_until(stop)
                .await
        }
    };
    state.done.report_exit();
    state.pickups.write()?;
    result.map_err(|e| anyhow::anyhow!("worker: {e}"))
}

/// Pushes `tasks` (1,000 per call), then parks the active list and prints the keys.
async fn push<T>(mut storage: Storage<T>, tasks: Vec<T>) -> anyhow::Result<()>
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + Clone + 'static,
{
    let n = tasks.len();
    for chunk in tasks.chunks(1000) {
        storage
            .push_bulk(chunk.to_vec())
            .await
            .map_err(|e| anyhow::anyhow!("push_bulk: {e}"))?;
    }
    let config = storage.get_config().clone();
    // apalis-redis files every pushed task in its scheduled set (due now); a worker's fetch
    // promotes *all* due tasks to the active list in one script, which fails ("too many
    // results to unpack") once more than about 8,000 are due, and the worker stops. So the
    // tasks are promoted here as that script does (RPUSH of the ids, in order of their due
    // time), 1,000 at a time, into a parked active list.
    let mut conn = storage.get_connection().clone();
    let (scheduled, active) = (config.scheduled_jobs_set(), config.active_jobs_list());
    let staged = format!("{active}:staged");
    redis::cmd("DEL")
        .arg(&staged)
        .query_async::<()>(&mut conn)
        .await?;
    let mut promoted = 0usize;
    loop {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&scheduled)
            .arg(0)
            .arg(999)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            break;
        }
        promoted += ids.len();
        redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg(&staged)
            .arg(&ids)
            .ignore()
            .cmd("ZREM")
            .arg(&scheduled)
            .arg(&ids)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
    }
    // Whatever went straight to the active list (nothing, at apalis' defaults) goes first.
    let direct: Vec<String> = redis::cmd("LRANGE")
        .arg(&active)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    if !direct.is_empty() {
        for chunk in direct.chunks(1000).rev() {
            redis::cmd("LPUSH")
                .arg(&staged)
                .arg(chunk.iter().rev().collect::<Vec<_>>())
                .query_async::<()>(&mut conn)
                .await?;
        }
        redis::cmd("DEL")
            .arg(&active)
            .query_async::<()>(&mut conn)
            .await?;
    }
    anyhow::ensure!(
        promoted + direct.len() == n,
        "pushed {n} tasks but found {promoted} scheduled and {} active",
        direct.len()
    );
    let parked = vec![serde_json::json!([staged, active])];
    println!(
        "{}",
        serde_json::json!({"pushed": n, "parked": parked, "signal": config.signal_list()})
    );
    Ok(())
}

/// `rate` tasks per second for `secs` seconds, each its own push, paced every millisecond.
async fn produce<T>(
    mut storage: Storage<T>,
    rate: u64,
    secs: u64,
    make: impl Fn(u64) -> T,
) -> anyhow::Result<()>
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
{
    let total = rate * secs;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            storage
                .push(make(sent))
                .await
                .map_err(|e| anyhow::anyhow!("push: {e}"))?;
            sent += 1;
        }
    }
    println!(
        "{}",
        serde_json::json!({"produced": sent, "secs": start.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// Wakes an idle worker every `interval`, like apalis' `IntervalStrategy`, but always leaves
/// a polled timer behind, so a wake-up is never lost.
struct Rearming {
    interval: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Rearming {
    fn new(interval: Duration) -> Self {
        Rearming {
            interval,
            sleep: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl apalis_core::backend::ext::poll_strategy::PollStrategy for Rearming {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &apalis_core::backend::ext::poll_strategy::PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        let mut fired = false;
        while self.sleep.as_mut().poll(cx).is_ready() {
            fired = true;
            let next = tokio::time::Instant::now() + self.interval;
            self.sleep.as_mut().reset(next);
        }
        if fired {
            std::task::Poll::Ready(Some(()))
        } else {
            std::task::Poll::Pending
        }
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
