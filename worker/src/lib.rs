//! `mail-worker`: a Sidekiq-compatible job processor that delivers `MailSenderJob` over SMTP.
//!
//! It reads and writes Redis exactly as Ruby Sidekiq does, so the stock Sidekiq Web UI shows
//! and operates its jobs, and adds what Sidekiq OSS lacks: reliable fetch with orphan
//! recovery, exactly-counted progress, per-job timeouts, panic isolation and Prometheus
//! metrics. It keeps no state of its own (Redis and SMTP only), so it scales freely.
//!
//! # Layout
//! - [`config`]: settings from environment variables.
//! - [`runner`]: start, the fetch loop, job execution, quiet/stop/shutdown.
//! - [`fetch`]: reliable fetch into private in-progress lists, and their recovery.
//! - [`outcome`]: releasing a lease and recording the result in one Lua script.
//! - [`progress`]: exact bulk-send counters, reconciled when the Web UI removes jobs.
//! - [`retry`]: Sidekiq's failure handling (backoff, retry set, dead set).
//! - [`scheduler`]: moving due jobs from `retry` and `schedule` to their queues.
//! - [`heartbeat`]: the Busy-page heartbeat, stats flush and Web UI signals.
//! - [`stats`]: `stat:*` counters and the Sidekiq 7/8 Metrics-page data.
//! - [`jobs`]: handlers by job class; [`mailer`]: templates; [`smtp`]: pooled SMTP connections.
//! - [`metrics`], [`http`]: `/metrics`, `/health/live`, `/health/ready`.
//! - [`clock`]: wall time with an offset tests can move.

pub mod clock;
pub mod config;
pub mod fetch;
pub mod heartbeat;
pub mod http;
pub mod jobs;
pub mod mailer;
pub mod metrics;
pub mod outcome;
pub mod progress;
pub mod retry;
pub mod runner;
pub mod scheduler;
pub mod smtp;
pub mod stats;

pub use clock::Clock;
pub use config::Settings;
pub use runner::{Handle, start};
