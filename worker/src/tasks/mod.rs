//! The background loops of a worker process, one per file, each taking exactly what it uses.
//! They never import each other; the launcher starts and stops them.
//!
//! - [`heartbeat`]: the Busy-page heartbeat, stats flush and Web UI signals.
//! - [`poller`]: moving due jobs from `retry` and `schedule` to their queues.
//! - [`recovery`]: giving back crashed processes' jobs; reconciling bulk-send counters.

pub mod heartbeat;
pub mod poller;
pub mod recovery;
