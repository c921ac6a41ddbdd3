//! Real-service test harness for the whole workspace.
//!
//! Tests never talk to a shared or default-port service. Each one starts what it needs:
//! - [`redis::RedisServer`]: Debian's `redis-server` on a free loopback port, killed on drop;
//! - [`smtp::SmtpServer`]: an in-process SMTP server that records messages and can be told
//!   to answer 4xx/5xx, stall or drop the connection;
//! - [`SidekiqVersion`]: the real Ruby Sidekiq 6.4 (native), 7.3 and 8.1 (Debian roots built
//!   by `ops/sidekiq-roots`, run under `chroot`);
//! - [`ruby`]: scripts run by a version's Ruby and Sidekiq against that Redis;
//! - [`sidekiq_web::SidekiqWeb`]: the real Sidekiq::Web of a version under puma, with a
//!   session-aware HTTP client that submits its forms (CSRF token or `Sec-Fetch-Site`);
//! - [`unleash::UnleashServer`]: the real Unleash 7.5.1 (npm) on a private PostgreSQL
//!   cluster, with the seed's flags and admin-API helpers;
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
pub mod sidekiq_version;
pub mod sidekiq_web;
pub mod smtp;
pub mod unleash;

pub use process::{TempDir, bin_path, free_port, wait_until};
pub use proxy::{Network, TcpProxy};
pub use redis::RedisServer;
pub use sidekiq_version::SidekiqVersion;
pub use sidekiq_web::SidekiqWeb;
pub use smtp::{Fault, ReceivedMail, SmtpServer};
pub use unleash::UnleashServer;

/// Turns each `async fn name(v: SidekiqVersion)` into three tests, `name::sidekiq_6_4`,
/// `name::sidekiq_7_3` and `name::sidekiq_8_1`, each against that real version.
#[macro_export]
macro_rules! on_every_sidekiq {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sidekiq_6_4() {
                super::$name($crate::SidekiqVersion::V6).await
            }
            #[tokio::test]
            async fn sidekiq_7_3() {
                super::$name($crate::SidekiqVersion::V7).await
            }
            #[tokio::test]
            async fn sidekiq_8_1() {
                super::$name($crate::SidekiqVersion::V8).await
            }
        }
    )*};
}
