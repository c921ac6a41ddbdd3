//! HTTP plumbing shared by the routes.
//!
//! - [`error`]: `AppError` and the page each failure becomes.
//! - [`session`], [`csrf`]: the signed session cookie and the checks every form passes.
//! - [`cookies`], [`flash`]: cookies, one-redirect messages.
//! - [`auth`]: optional basic auth.
//! - [`metrics`]: Prometheus request metrics.
//! - [`templates`]: the minijinja environment and the page response (CSP, cookies).
//! - [`proxy`]: `/sidekiq` reverse-proxied to the Sidekiq Web UI.
//! - [`server`]: connections: header and idle deadlines, a connection limit, the drain.

pub mod auth;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod flash;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod session;
pub mod templates;
