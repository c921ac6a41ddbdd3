//! `mail-web`: the Rails-style UI of the mail system, rebuilt with axum + minijinja +
//! rusqlite. Addresses (list, search, add, delete, CSV import, test addresses), bulk sends
//! enqueued as Sidekiq `MailSenderJob`s, live progress, the worker panel, `/sidekiq` proxied
//! to the stock Sidekiq Web, health and Prometheus metrics.
//!
//! # Layout
//! - [`config`]: environment variables, parsed once.
//! - [`app`]: [`App::build`] / [`App::run_until_stopped`]: listener, background sampler,
//!   graceful shutdown.
//! - [`routes`]: [`router`] and the handlers, one module per area.
//! - Domain and storage: [`address`] (validated input), [`addresses`] (`emails` table),
//!   [`mail_jobs`] (`mail_jobs` table + progress merge), [`csv_import`] (decoding and
//!   validating uploads), [`db`] (SQLite, migrations, blocking pool).
//! - Redis: [`sidekiq_redis`] (lazy, time-bounded connection), [`live`] (the live panel).
//! - HTTP plumbing: [`csrf`], [`flash`], [`cookies`], [`basic_auth`], [`http_metrics`],
//!   [`sidekiq_proxy`], [`templates`], [`i18n`], [`error`], [`throughput`], [`telemetry`].
//!
//! The worker never reads SQLite; everything it needs travels in the job args.

pub mod address;
pub mod addresses;
pub mod app;
pub mod basic_auth;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod csv_import;
pub mod db;
pub mod error;
pub mod flash;
pub mod http_metrics;
pub mod i18n;
pub mod live;
pub mod mail_jobs;
pub mod routes;
pub mod sidekiq_proxy;
pub mod sidekiq_redis;
pub mod state;
pub mod telemetry;
pub mod templates;
pub mod throughput;

pub use app::App;
pub use config::Config;
pub use routes::router;
pub use state::AppState;
