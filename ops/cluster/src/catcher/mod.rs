//! `mail-catcher`: the native mail catcher of `ops/run` (MailCatcher's role in the seed).
//!
//! It accepts every message over SMTP, keeps it under `<dir>` (`.run/mail` for `ops/run`:
//! it survives restarts), and shows it on a small web UI at port 1080 with a JSON API the
//! drill and the tests count with. A per-message latency (`MAIL_CATCHER_LATENCY_MS`) stands
//! in for a real relay's acceptance time, so a burst stays in flight long enough to watch.
//!
//! # Layout
//! - [`store`]: the messages on disk (one `.eml` each plus an index), counts and duplicates.
//! - [`smtp`]: the SMTP server.
//! - [`http`]: the UI and the API.

pub mod http;
pub mod smtp;
pub mod store;

pub use store::{Stats, Store};
