//! The Unleash feature flags both binaries read, by the names the seed gave them, and what
//! each one means. `ops/unleash/flags` creates them; the web and the worker evaluate them
//! with `unleash-api-client`.
//!
//! Every flag is read so that its *safe* value is also what a process uses while Unleash is
//! unreachable or has never answered (the SDK reads every flag as off until its first
//! successful fetch): bulk sends allowed, the `default` queue, delivery not paused.

/// Kill switch of `POST /emails/bulk_send` (a `release` flag, on by default). Off: the web
/// enqueues nothing, says why and shows the buttons disabled.
pub const BULK_SEND_FEATURE: &str = "bulk_send_feature";

/// The queue experiment (an `experiment` flag) with the variants [`DEFAULT_VARIANT`] and
/// [`PRIORITY_VARIANT`], chosen per visitor (a stable id in a cookie, Unleash's `userId`).
pub const SEND_STRATEGY: &str = "send_strategy";

/// Variant of [`SEND_STRATEGY`] that enqueues into `default`.
pub const DEFAULT_VARIANT: &str = "default";

/// Variant of [`SEND_STRATEGY`] that enqueues into `high`, which the worker takes twice as
/// often as `default` (`WORKER_QUEUES=high,2 default,1`).
pub const PRIORITY_VARIANT: &str = "priority";

/// The incident switch (a `kill-switch` flag, off by default). On: every worker stops
/// fetching; jobs stay in their queues, running ones finish, the Busy page shows the
/// processes quiet. Off: they fetch again.
pub const MAIL_DELIVERY_PAUSED: &str = "mail_delivery_paused";

/// The app name both binaries register with (the seed's `config.app_name`).
pub const APP_NAME: &str = "mail-worker-k8s";

/// How often the SDK fetches the flags by default (the seed's `refresh_interval = 15`).
pub const DEFAULT_REFRESH_SECS: u64 = 15;
