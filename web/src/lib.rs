//! `mail-web`: the Rails-style UI of the mail system, rebuilt with axum + minijinja +
//! rusqlite. Addresses (list, search, add, delete, CSV import, test addresses), bulk sends
//! enqueued as Sidekiq `MailSenderJob`s, live progress, the worker panel, `/sidekiq` proxied
//! to the stock Sidekiq Web, health and Prometheus metrics.
//!
//! # Layout
//! - [`config`]: environment variables, parsed once.
//! - [`app`]: [`App::build`] / [`App::run_until_stopped`]: listener, background sampler,
//!   graceful shutdown; [`state`]: what every handler shares.
//! - [`routes`]: [`router`] (mail-web's port), [`admin_router`] (the Sidekiq admin's own
//!   origin) and the handlers (request in, response out), one module per area.
//! - [`domain`]: validated addresses, bulk-send status and merge, CSV planning.
//! - [`storage`]: SQLite (schema, queries) and the Sidekiq Redis.
//! - [`services`]: the use cases behind the handlers (live progress, throughput).
//! - [`flags`]: the Unleash flags (kill switch, the queue experiment per visitor) and their
//!   fallback when Unleash is unreachable.
//! - [`http`]: errors, CSRF, cookies, flash, basic auth, metrics, templates, the proxy.
//! - [`i18n`]: Japanese and English texts, language negotiation, formatting.
//!
//! Dependencies point one way: `routes → services → storage → domain`; `http` and `i18n`
//! are used by routes and services, never the other way round. The worker never reads
//! SQLite; everything it needs travels in the job args.

pub mod app;
pub mod config;
pub mod domain;
pub mod flags;
pub mod http;
pub mod i18n;
pub mod routes;
pub mod services;
pub mod state;
pub mod storage;

pub use app::App;
pub use config::Config;
pub use routes::{admin_router, router};
pub use state::AppState;
