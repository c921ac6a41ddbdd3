//! End-to-end tests against real services: one test binary (one link step), one module per
//! area. Every test starts its own redis-server and runs on each real Sidekiq (6.4, 7.3, 8.1).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod interop;
