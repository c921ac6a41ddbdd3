//! Use cases that combine storage and domain rules, called by the handlers.
//!
//! - [`live`]: the live panel (progress merged from Redis, workers, queues, sparkline).
//! - [`throughput`]: mails per second over the last minute and its sparkline.

pub mod live;
pub mod throughput;
