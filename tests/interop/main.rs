//! End-to-end tests against real services: one test binary (one link step), one module per
//! area. Every test starts its own redis-server; Ruby is Debian's ruby-sidekiq 6.4.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod interop;
