//! The benchmark's two jobs as the Rust peers run them, and the bookkeeping both peers share.
//!
//! - [`Mailer`]: the seed's `MailSenderJob` mail — mail-worker's own templates
//!   (`templates/emails/`, embedded), rendered with minijinja, a multipart text + HTML message
//!   built and sent with lettre's pooled async SMTP transport at its defaults (what a user of
//!   a job library without a mailer would write);
//! - [`Completion`]: counts finished jobs and prints one JSON line when the number the
//!   benchmark expects (`BENCH_EXPECT`) is reached, and one at exit, so `mail-bench` knows
//!   when a drain ended and can check that every job ran exactly once;
//! - [`Pickups`]: per-job pickup latencies (enqueue → handler start) for a peer whose
//!   fetch buffers jobs, written to `BENCH_PICKUP_OUT` at exit.
//!
//! Settings come from the same variables mail-worker reads: `REDIS_URL`, `SMTP_HOST`,
//! `SMTP_PORT`, `MAIL_FROM`, plus `PEER_CONCURRENCY`.

use anyhow::Context;
use chrono::Utc;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use serde::Deserialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The seed's subject line.
pub const SUBJECT: &str = "テスト送信メール";

const HTML: &str = include_str!("../../../../templates/emails/notification.html.jinja");
const TEXT: &str = include_str!("../../../../templates/emails/notification.txt.jinja");

/// The args of a `MailSenderJob` (the fields the mail needs; others are ignored).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct MailArgs {
    /// Recipient address.
    pub to: String,
    /// Recipient name, shown in the greeting.
    #[serde(default)]
    pub name: Option<String>,
}

/// Templates, sender and lettre's pooled transport.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Environment<'static>,
}

impl Mailer {
    /// From `SMTP_HOST` (localhost), `SMTP_PORT` (1025) and `MAIL_FROM`.
    ///
    /// # Errors
    /// A bad port, sender or template.
    pub fn from_env() -> anyhow::Result<Self> {
        let host = env_or("SMTP_HOST", "localhost");
        let port: u16 = env_or("SMTP_PORT", "1025").parse().context("SMTP_PORT")?;
        let from: Mailbox = env_or("MAIL_FROM", "test@example.com")
            .parse()
            .context("MAIL_FROM")?;
        // lettre's documented way to reach a plain local relay; the pool is on by default.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        let mut templates = Environment::new();
        templates.add_template("notification.html.jinja", HTML)?;
        templates.add_template("notification.txt.jinja", TEXT)?;
        Ok(Mailer {
            transport,
            from,
            templates,
        })
    }

    /// Renders and sends the notification.
    ///
    /// # Errors
    /// A bad address, a template error or an SMTP failure.
    pub async fn send(&self, args: &MailArgs) -> anyhow::Result<()> {
        let name = args
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let ctx = minijinja::context! {
            subject => SUBJECT,
            name => name.unwrap_or(&args.to),
            email => &args.to,
            sent_at => Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        };
        let html = self
            .templates
            .get_template("notification.html.jinja")?
            .render(&ctx)?;
        let text = self
            .templates
            .get_template("notification.txt.jinja")?
            .render(&ctx)?;
        let to = Mailbox::new(name.map(str::to_owned), args.to.parse()?);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(SUBJECT)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// Counts finished jobs; reports when `BENCH_EXPECT` of them are done.
pub struct Completion {
    done: AtomicU64,
    failed: AtomicU64,
    expect: u64,
}

impl Completion {
    /// Expecting `BENCH_EXPECT` jobs (0: never report before exit).
    pub fn from_env() -> Self {
        Completion {
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            expect: env_or("BENCH_EXPECT", "0").parse().unwrap_or(0),
        }
    }

    /// One job finished (ok or not).
    pub fn finished(&self, ok: bool) {
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let n = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.expect {
            println!(
                "{}",
                serde_json::json!({"event": "drained", "completed": n, "failed": self.failed.load(Ordering::Acquire), "at": unix_secs()})
            );
        }
    }

    /// The line printed at exit: every job this process finished.
    pub fn report_exit(&self) {
        println!(
            "{}",
            serde_json::json!({"event": "exit", "completed": self.done.load(Ordering::Acquire), "failed": self.failed.load(Ordering::Acquire)})
        );
    }
}

/// Pickup latencies in microseconds, kept only when `BENCH_PICKUP_OUT` is set.
pub struct Pickups {
    out: Option<String>,
    micros: Mutex<Vec<u64>>,
}

impl Pickups {
    /// Recording when `BENCH_PICKUP_OUT` names a file.
    pub fn from_env() -> Self {
        Pickups {
            out: std::env::var("BENCH_PICKUP_OUT")
                .ok()
                .filter(|s| !s.is_empty()),
            micros: Mutex::new(Vec::new()),
        }
    }

    /// A job enqueued at `enqueued_us` (epoch microseconds) starts now.
    pub fn started(&self, enqueued_us: u64) {
        if self.out.is_some() {
            let now = unix_micros();
            if let Ok(mut v) = self.micros.lock() {
                v.push(now.saturating_sub(enqueued_us));
            }
        }
    }

    /// Writes the latencies, one per line, to `BENCH_PICKUP_OUT`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self) -> anyhow::Result<()> {
        let Some(path) = &self.out else { return Ok(()) };
        let v = self.micros.lock().map(|v| v.clone()).unwrap_or_default();
        let text: String = v.iter().map(|u| format!("{u}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("write {path}"))
    }
}

/// Epoch seconds as a float.
pub fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Epoch microseconds.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// An environment variable or its default.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `PEER_CONCURRENCY`, if set.
pub fn concurrency() -> anyhow::Result<Option<usize>> {
    match std::env::var("PEER_CONCURRENCY") {
        Ok(v) if !v.is_empty() => Ok(Some(v.parse().context("PEER_CONCURRENCY")?)),
        _ => Ok(None),
    }
}

/// `PEER_LOG_LEVEL` (`info` unless set): the peers log every job at INFO, as their examples do.
pub fn log_level() -> tracing::Level {
    env_or("PEER_LOG_LEVEL", "info")
        .parse()
        .unwrap_or(tracing::Level::INFO)
}
