//! Sidekiq's Redis data model, spoken by the Rust mail worker and the Rust web app.
//!
//! Everything in here writes data that the stock Ruby Sidekiq Web UI (6.4, 7.x and 8.x)
//! renders and operates, and reads whatever those versions write. The rules, and why, are in
//! `docs/sidekiq-data-model.md` of the repository; the short version: timestamps are written
//! as float epoch seconds with a decimal point and read as "float ⇒ seconds, integer ⇒
//! milliseconds", jids are 24 lowercase hex characters, and a payload is never stored with `at`.
//!
//! # Layout
//! - [`timestamp`]: the float-seconds / integer-milliseconds rule.
//! - [`job`]: a job payload kept as Sidekiq's own hash, with typed accessors; unknown keys survive.
//! - [`backtrace`]: the zlib + base64 `error_backtrace` codec.
//! - [`keys`]: Redis key names (`queue:<q>`, `retry`, `dead`, stats and metrics keys, …).
//! - [`client`]: `push`, `push_bulk`, scheduled push.
//! - [`process`]: heartbeat records (`processes`, `<identity>` hashes) for writers and readers.
//! - [`overview`]: dashboard numbers (queue sizes and latency, totals).
//!
//! The crate knows nothing of this project's jobs (those are in `mail-protocol`) and has no
//! HTTP, SMTP or SQL in it.

pub mod backtrace;
pub mod client;
pub mod job;
pub mod keys;
pub mod overview;
pub mod process;
pub mod timestamp;

pub use client::{Client, PushError};
pub use job::{Job, JobError, Retry, new_jid, random_hex};
pub use timestamp::Timestamp;

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctest;
