//! `mail-worker`: a Sidekiq-compatible job processor that delivers `MailSenderJob` over SMTP.
//!
//! It reads and writes Redis exactly as Ruby Sidekiq does, so the stock Sidekiq Web UI shows
//! and operates its jobs, and adds what Sidekiq OSS lacks: reliable fetch with orphan
//! recovery, exactly-counted progress, per-job timeouts, panic isolation and Prometheus
//! metrics. It keeps no state of its own (Redis and SMTP only), so it scales freely.
//!
//! # Layout
//! Roles, as Sidekiq splits them; each depends only on the ones below it:
//! - [`launcher`]: start, the task set, and the stop sequence against one deadline.
//! - [`manager`]: the fetch loop, worker slots, one task per job, the hard stop.
//! - [`processor`]: one job to its end: execute in isolation, decide, record.
//! - [`step`]: the same, one step at a time, for tests and tools.
//! - [`tasks`]: the heartbeat, the scheduled-job poller, the recovery loop.
//! - [`jobs`]: handlers by job class; [`mailer`]: templates; [`smtp`]: pooled SMTP connections.
//! - [`retry`]: Sidekiq's failure handling (backoff, retry set, dead set).
//! - [`store`]: every Redis round trip and Lua script.
//! - [`http`]: `/metrics`, `/health/live`, `/health/ready`.
//! - [`flags`]: the `mail_delivery_paused` flag from Unleash, which holds the fetch loop.
//!
//! Leaf types: [`decision`] (what became of a job), [`unreadable`] (payloads that are not jobs), [`control`] (quiet/stop, the signal
//! table, the stop deadline), [`busy`] (running jobs), [`health`], [`identity`], [`queues`],
//! [`stats`] and [`metrics`] (counters), [`config`], [`clock`].

pub mod busy;
pub mod clock;
pub mod config;
pub mod control;
pub mod decision;
pub mod flags;
pub mod health;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod launcher;
pub mod mailer;
pub mod manager;
pub mod metrics;
pub mod processor;
pub mod queues;
pub mod retry;
pub mod smtp;
pub mod stats;
pub mod step;
pub mod store;
pub mod tasks;
pub mod unreadable;

pub use clock::Clock;
pub use config::Settings;
pub use control::Signal;
pub use decision::Decision;
pub use launcher::{Handle, start};
pub use step::{Step, Stepper};
