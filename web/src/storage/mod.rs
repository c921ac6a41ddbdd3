//! Where the web's data lives: SQLite (addresses, bulk sends) and the Sidekiq Redis.
//!
//! - [`db`]: opening SQLite, migrations, running queries on the blocking pool.
//! - [`addresses`]: the `emails` table.
//! - [`mail_jobs`]: the `mail_jobs` table.
//! - [`sidekiq`]: the lazily connected, time-bounded Sidekiq Redis.
//! - [`lesson`]: the lesson guide's sends, its record and looks at the retry and dead sets.

pub mod addresses;
pub mod db;
pub mod lesson;
pub mod mail_jobs;
pub mod sidekiq;
