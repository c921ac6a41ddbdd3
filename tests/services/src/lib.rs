//! Real-service test harness for the whole workspace.
//!
//! Tests never talk to a shared or default-port service. Each one starts what it needs:
//! - [`redis::RedisServer`]: Debian's `redis-server` on a free loopback port, killed on drop;
//! - [`smtp::SmtpServer`]: an in-process SMTP server that records messages and can be told
//!   to answer 4xx/5xx, stall or drop the connection;
//! - [`ruby`]: scripts run by Debian's Ruby with `ruby-sidekiq` 6.4.1 against that Redis;
//! - [`sidekiq_web::SidekiqWeb`]: the real Sidekiq::Web 6.4.1 under puma, with a session-aware
//!   HTTP client that submits its forms (CSRF token included);
//! - [`proxy::TcpProxy`]: a TCP proxy that can black-hole traffic, lose replies or reset
//!   connections, for network-fault tests;
//! - [`process`]: free ports, temp dirs, locating the workspace's built binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "test support: a failed setup step should stop the test loudly"
)]

pub mod process;
pub mod proxy;
pub mod redis;
pub mod ruby;
pub mod sidekiq_web;
pub mod smtp;

pub use process::{TempDir, bin_path, free_port, wait_until};
pub use proxy::{Network, TcpProxy};
pub use redis::RedisServer;
pub use sidekiq_web::SidekiqWeb;
pub use smtp::{Fault, ReceivedMail, SmtpServer};
