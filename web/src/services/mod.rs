//! Use cases that combine storage and domain rules, called by the handlers. Each takes only
//! what it needs (a [`crate::storage::db::Db`], the Sidekiq Redis), never the whole state.
//!
//! - [`bulk_send`]: check a bulk-send request, pick recipients, record it, enqueue the jobs.
//! - [`import`]: a CSV upload into the address table, with a report by line.
//! - [`live`]: the live panel (progress merged from Redis, workers, queues, sparkline).
//! - [`lesson`]: the lesson guide's view and the watcher that ticks its steps off.
//! - [`throughput`]: mails per second over the last minute and its sparkline.

pub mod bulk_send;
pub mod import;
pub mod lesson;
pub mod live;
pub mod throughput;
