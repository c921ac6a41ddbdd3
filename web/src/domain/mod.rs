//! The web's domain: values parsed at the edge and rules that need neither HTTP, SQL nor
//! Redis.
//!
//! - [`address`]: a new address, already validated ([`address::NewAddress`]).
//! - [`mail_job`]: a bulk send, its status and how the worker's live counters merge in.
//! - [`experiment`]: the A/B results of the `send_strategy` flag, per arm.
//! - [`csv_import`]: an uploaded CSV → decoded text → a plan of rows to insert, by line.
//! - [`lesson`]: the lesson guide's steps and how a click in the admin shows in Redis.
//! - [`autoscaling`]: the workers panel's view of the local autoscaler and stale processes.

pub mod address;
pub mod autoscaling;
pub mod csv_import;
pub mod experiment;
pub mod lesson;
pub mod mail_job;
