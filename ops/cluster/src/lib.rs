//! `mail-cluster`: the system as a small local cluster, without Kubernetes.
//!
//! `ops/run` runs Redis, the mail catcher, the Sidekiq admin, Unleash (`ops/unleash/serve`),
//! N workers and the web under a supervisor that behaves like a Deployment (restarts, ordered
//! stop, process groups), and optionally lets the Kubernetes HPA algorithm pick the worker
//! count. `ops/autoscale-drill` runs that algorithm against a burst of mail and reports what
//! it did.
//!
//! # Layout
//! - [`config`]: flags and environment variables, read once.
//! - [`supervisor`]: processes as replicas: start, readiness, restart, scale, tiered stop.
//! - [`cluster`]: the services of `ops/run`, one entry each, and its main flow.
//! - [`logs`]: per-replica log files (rotated per start) fed from the children's pipes.
//! - [`ports`]: free ports and readiness checks.
//! - [`hpa`]: the HPA algorithm (proposals, tolerance, stabilization, rate policies).
//! - [`manifest`]: its parameters read from `ops/k8s` (HPA, CPU request, KEDA ScaledObject).
//! - [`cpu`]: per-process CPU in millicores, measured like metrics-server.
//! - [`autoscaler`]: the control loop tying them together, publishing its state to Redis.
//! - [`drill`]: the flow of `ops/autoscale-drill`.
//! - [`catcher`]: `mail-catcher`, the native SMTP catcher with a web UI.
//! - [`telemetry`]: terminal lines with zoned timestamps, JSON log files.

pub mod autoscaler;
pub mod catcher;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod drill;
pub mod hpa;
pub mod logs;
pub mod manifest;
pub mod ports;
pub mod supervisor;
pub mod telemetry;
