//! End-to-end tests of mail-worker against a real Redis, the real Ruby Sidekiq 6.4.1 (client
//! and Web UI) and a real SMTP server (test-services' in-process one, which can inject faults).
//! One test binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod delivery;
mod failures;
mod faults;
mod no_loss;
mod pause;
mod rust_producer;
mod webui;

use mail_worker::processor::Processed;
use mail_worker::{Clock, Handle, Settings, Step, Stepper};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use test_services::{RedisServer, SmtpServer};

/// Settings for a worker against these servers, with short intervals so tests run fast.
pub fn settings(redis: &RedisServer, smtp: &SmtpServer) -> Settings {
    let mut s = Settings::local();
    s.redis_url = redis.url();
    s.smtp_host = "127.0.0.1".into();
    s.smtp_port = smtp.port();
    s.metrics_port = 0;
    s.concurrency = 10;
    s.queues = vec![("high".into(), 2), ("default".into(), 1)];
    s.heartbeat_interval = Duration::from_millis(500);
    s.poll_interval = Some(Duration::from_millis(300));
    s.recovery_interval = Duration::from_secs(1);
    s.recovery_grace = Duration::from_secs(1);
    s.shutdown_timeout = Duration::from_secs(5);
    s.smtp_timeout = Duration::from_secs(2);
    s.job_timeout = Duration::from_secs(10);
    s.hostname = "e2e".into();
    s
}

/// Starts the worker in this process.
pub async fn start(s: Settings) -> Handle {
    service_runtime::logging::init_for_tests();
    mail_worker::start(s, Clock::system()).await.unwrap()
}

/// A worker that runs nothing on its own: the test drives it step by step.
pub async fn stepper(s: &Settings) -> Stepper {
    service_runtime::logging::init_for_tests();
    Stepper::connect(s, Clock::system()).await.unwrap()
}

/// The one job `stepper` processes next (panics if every queue is empty).
pub async fn step(stepper: &Stepper) -> Processed {
    match stepper.process_one().await.unwrap() {
        Step::Processed(p) => p,
        other => panic!("expected a job to run, got {other:?}"),
    }
}

/// Environment variables that configure the binary like [`settings`].
pub fn binary_env(redis: &RedisServer, smtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.url()),
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", smtp_port.to_string()),
        ("METRICS_PORT", "0".into()),
        ("WORKER_CONCURRENCY", "10".into()),
        ("WORKER_QUEUES", "high,2 default,1".into()),
        ("HEARTBEAT_INTERVAL", "0.5".into()),
        ("SCHEDULED_POLL_INTERVAL", "0.3".into()),
        ("RECOVERY_INTERVAL", "1".into()),
        ("RECOVERY_GRACE", "1".into()),
        ("SHUTDOWN_TIMEOUT", "5".into()),
        ("SMTP_TIMEOUT", "2".into()),
        ("HOSTNAME", "e2e-bin".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// The real binary, as a child process.
pub fn spawn_binary(env: &[(&'static str, String)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mail-worker"));
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

/// Sorted-set members parsed as JSON (a member that is not JSON comes back as a String).
pub async fn zmembers(redis: &RedisServer, key: &str) -> Vec<(Value, f64)> {
    redis
        .zrange_withscores(key)
        .await
        .into_iter()
        .map(|(m, s)| (serde_json::from_str(&m).unwrap_or(Value::String(m)), s))
        .collect()
}

/// Every in-progress and staging list of every process (must be empty when all is done).
pub async fn inprogress_total(redis: &RedisServer) -> u64 {
    let mut c = redis.conn().await;
    let lists: Vec<String> = redis::cmd("KEYS")
        .arg("mailworker:*progress:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let staging: Vec<String> = redis::cmd("KEYS")
        .arg("mailworker:staging:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut total = 0;
    for l in lists
        .iter()
        .chain(&staging)
        .filter(|k| k.starts_with("mailworker:inprogress:") || k.starts_with("mailworker:staging:"))
    {
        total += redis.llen(l).await;
    }
    total
}

pub async fn progress(redis: &RedisServer, id: i64) -> mail_protocol::Progress {
    let mut c = redis.conn().await;
    mail_protocol::progress::read_progress(&mut c, &[mail_protocol::SendId::for_mail_job(id)])
        .await
        .unwrap()[0]
}

/// A `MailSenderJob` to `to` on `default`, counted under `mail_job_id` if given.
pub fn mail(to: &str, mail_job_id: impl Into<Option<i64>>) -> sidekiq_wire::Job {
    mail_protocol::MailSenderArgs {
        to: to.into(),
        name: None,
        email_id: None,
        mail_job_id: mail_job_id.into(),
        instance: None,
        simulate_error: false,
    }
    .into_job("default")
}

/// Pushes `n` MailSenderJobs for mail_job `id` with Ruby's own client (push_bulk).
pub async fn ruby_push_mail(
    redis: &RedisServer,
    n: usize,
    id: i64,
    queue: &str,
    simulate_error: bool,
) -> Vec<String> {
    let out = test_services::ruby::json(
        &redis.url(),
        &format!(
            r#"
            jids = Sidekiq::Client.push_bulk("class" => "MailSenderJob", "queue" => "{queue}", "retry" => 3,
              "args" => (1..{n}).map {{ |i| [{{"to" => "user#{{i}}@example.test", "name" => "User #{{i}}",
                "email_id" => i, "mail_job_id" => {id}, "simulate_error" => {simulate_error}}}] }})
            puts JSON.generate(jids)
            "#
        ),
    )
    .await;
    out.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}
