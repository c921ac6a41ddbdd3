//! Benchmark peer: the seed's `MailSenderJob` and a `NoopJob` on rusty-sidekiq 0.15
//! (film42/sidekiq-rs), set up as its README advises: a bb8 pool of its
//! `RedisConnectionManager`, `Processor` on the `default` queue, `num_workers` from
//! `PEER_CONCURRENCY` (its default, the number of CPUs, when unset) and a pool at least that
//! large (its README: more worker tasks than pooled connections delays fetches). Logs at INFO
//! with tracing's default formatter, as its examples do.
//!
//! `mail-bench` enqueues the jobs in Sidekiq's format (they are the same payloads every
//! Sidekiq-compatible system gets) and stops this process with SIGTERM; the process prints
//! one JSON line when `BENCH_EXPECT` jobs have finished and one at exit.

use async_trait::async_trait;
use bench_mail_job::{Completion, MailArgs, Mailer};
use sidekiq::{Processor, ProcessorConfig, RedisConnectionManager, Worker};
use std::sync::Arc;

/// Sends the seed's notification mail.
#[derive(Clone)]
struct MailSenderJob {
    mailer: Arc<Mailer>,
    done: Arc<Completion>,
}

#[async_trait]
impl Worker<MailArgs> for MailSenderJob {
    fn max_retries(&self) -> usize {
        3
    }

    async fn perform(&self, args: MailArgs) -> sidekiq::Result<()> {
        let result = self.mailer.send(&args).await;
        self.done.finished(result.is_ok());
        result.map_err(|e| sidekiq::Error::Message(e.to_string()))
    }
}

/// Does nothing: measures the queue machinery.
#[derive(Clone)]
struct NoopJob {
    done: Arc<Completion>,
}

#[async_trait]
impl Worker<serde_json::Value> for NoopJob {
    async fn perform(&self, _args: serde_json::Value) -> sidekiq::Result<()> {
        self.done.finished(true);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let url = bench_mail_job::env_or("REDIS_URL", "redis://127.0.0.1:6379/0");
    let config = match bench_mail_job::concurrency()? {
        Some(n) => ProcessorConfig::default().num_workers(n),
        None => ProcessorConfig::default(),
    };
    let workers = config.num_workers;
    let manager = RedisConnectionManager::new(url)?;
    let pool = bb8::Pool::builder()
        .max_size(u32::try_from(workers.max(10))?)
        .build(manager)
        .await?;
    let done = Arc::new(Completion::from_env());
    let mut processor = Processor::new(pool, vec!["default".to_owned()]).with_config(config);
    processor.register(MailSenderJob {
        mailer: Arc::new(Mailer::from_env()?),
        done: done.clone(),
    });
    processor.register(NoopJob { done: done.clone() });
    let cancel = processor.get_cancellation_token();
    tokio::spawn(async move {
        stop_signal().await;
        cancel.cancel();
    });
    println!(
        "{}",
        serde_json::json!({"event": "started", "workers": workers})
    );
    processor.run().await;
    done.report_exit();
    Ok(())
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

/// tracing's default formatter at INFO (rusty-sidekiq logs every job's start and end).
fn tracing_subscriber_init() {
    tracing_subscriber::fmt()
        .with_max_level(bench_mail_job::log_level())
        .with_ansi(false)
        .init();
}
