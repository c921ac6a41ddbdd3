//! Router tests (`oneshot` against `mail_web::router`, a temp SQLite per test, a private
//! `redis-server` where Redis matters) and end-to-end tests with the real binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod support;

mod addresses;
mod bulk_send;
mod concurrency;
mod connections;
mod csv;
mod display;
mod e2e;
mod flags;
mod health;
mod lesson;
mod memory;
mod network_faults;
mod progress;
mod proxy;
mod security;
mod storage_faults;
mod workers_panel;
