//! Job handlers, one file per class, dispatched by `class` (mini-redis's `Command::from_frame`).
//!
//! A class without a Rust handler goes to the dead set at once: retrying cannot make it
//! appear, and the dead set keeps it visible (and re-runnable) in the Web UI. Ruby jobs and
//! Rust jobs should live on different queues.

mod mail_sender;

use crate::clock::Clock;
use crate::mailer::Mailer;
use service_runtime::redis_link::RedisLink;
use sidekiq_wire::Job;
use std::sync::Arc;

/// Class of the no-op job used by the benchmark and smoke tests.
pub const NOOP_CLASS: &str = "NoopJob";

/// What a handler needs.
#[derive(Clone)]
pub struct JobContext {
    /// Pooled SMTP sender.
    pub mailer: Arc<Mailer>,
    /// Shared Redis connection (idempotency checks).
    pub redis: RedisLink,
    /// The worker's clock.
    pub clock: Clock,
}

/// A failed run, as the retry handler ([`crate::retry`]) needs it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Shown as `error_class` (e.g. `SmtpTransientError`).
    pub class: String,
    /// Shown as `error_message`.
    pub message: String,
    /// Lines for `error_backtrace` when the job asks for one (the error's cause chain).
    pub backtrace: Vec<String>,
    /// Skip the retry set: the job can never succeed as it is (bad args, unknown class,
    /// permanent SMTP rejection). It goes straight to the dead set, where a person can
    /// fix and retry it from the Web UI.
    pub permanent: bool,
}

/// A successful run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Performed {
    /// A mail was handed to the SMTP server.
    Delivered,
    /// This jid was delivered before (the job ran twice); nothing was sent.
    AlreadyDelivered,
    /// A job that sends nothing finished.
    Done,
}

/// The class name to label metrics with: a class we have a handler for, or `unknown`, so a
/// stream of made-up class names cannot grow `/metrics` without bound.
pub fn metrics_label(class: &str) -> &'static str {
    match class {
        mail_protocol::job::CLASS => mail_protocol::job::CLASS,
        NOOP_CLASS => NOOP_CLASS,
        _ => "unknown",
    }
}

/// Runs `job` with the handler for its class.
///
/// # Errors
/// A [`Failure`] for the retry handler.
pub async fn perform(ctx: &JobContext, job: &Job) -> Result<Performed, Failure> {
    match job.class() {
        mail_protocol::job::CLASS => mail_sender::perform(ctx, job).await,
        NOOP_CLASS => Ok(Performed::Done),
        other => Err(Failure {
            class: "NameError".into(),
            message: format!(
                "uninitialized constant {other}: mail-worker has no handler for this class"
            ),
            backtrace: vec![format!(
                "mail-worker: jobs::perform dispatch on class {other:?}"
            )],
            permanent: true,
        }),
    }
}
