//! The contract between `mail-web` and `mail-worker`.
//!
//! The two binaries never depend on each other; what one writes and the other reads is
//! defined here, on top of Sidekiq's own data model in `sidekiq-wire`:
//!
//! # Layout
//! - [`job`]: `MailSenderJob` (class name, `retry: 3`, queues) and its arguments.
//! - [`keys`]: every `mailworker:*` Redis key (progress, delivery states, reliable-fetch
//!   registry).
//! - [`progress`]: exact bulk-send counters, the Lua that moves them, the "already sent" rule.
//! - [`address`]: the e-mail address rule, so an address the web accepts is one the worker
//!   can deliver to.
//! - [`autoscaler`]: the local autoscaler's state (`mailworker:autoscaler`) for the workers
//!   panel.
//! - [`flags`]: the Unleash feature flags both binaries read, their variants and safe values.

pub mod address;
pub mod autoscaler;
pub mod flags;
pub mod job;
pub mod keys;
pub mod progress;

pub use job::{MailSenderArgs, SendId};
pub use progress::{DeliveryState, Progress};
