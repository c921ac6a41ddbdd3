//! What every binary of this workspace needs at run time, done one way for all of them.
//!
//! # Layout
//! - [`config`]: settings from environment variables ([`config::Vars`]), read once at start,
//!   with typed parsing, one error type and [`config::Secret`]s that never print.
//! - [`logging`]: JSON log lines through `tracing`, and test logs on demand (`TEST_LOG=1`).
//! - [`prometheus`]: the text exposition format: histograms, label escaping, headers.
//! - [`usage`]: this process's CPU time and resident memory, from `/proc`.
//! - [`redis_link`]: one shared Redis connection that replaces itself after a timeout or reset.
//! - [`timeouts`]: timeouts that give an operation one more period after the process was
//!   paused, so a VM pause does not make finished work count as failed.
//! - [`flags`]: feature flags from Unleash, with whether they are live or the defaults.
//! - [`tokens`]: comparing secrets without leaking where they differ.
//! - [`html`]: escaping text for pages built without templates.

pub mod config;
pub mod flags;
pub mod html;
pub mod logging;
pub mod prometheus;
pub mod redis_link;
pub mod timeouts;
pub mod tokens;
pub mod usage;
