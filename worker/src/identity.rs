//! Who this process is on the Busy page: `hostname:pid:nonce` (Sidekiq's format) and the
//! `info` JSON written with every heartbeat.

use crate::config::Settings;
use sidekiq_wire::Timestamp;
use sidekiq_wire::process::ProcessInfo;

/// The identity of one worker process, fixed for its lifetime (a restarted process is a new
/// one, as in Sidekiq).
#[derive(Debug, Clone)]
pub struct Identity {
    /// `hostname:pid:hex`: the hash key, `processes` member and `info.identity`.
    pub name: String,
    /// The serialized `info`, written every beat.
    pub info_json: String,
}

impl Identity {
    /// A fresh identity for this process, started at `started_at`.
    ///
    /// # Errors
    /// `info` does not serialize (it always does; the error is not hidden).
    pub fn new(settings: &Settings, started_at: Timestamp) -> serde_json::Result<Self> {
        let pid = std::process::id();
        let name = format!(
            "{}:{pid}:{}",
            settings.hostname,
            sidekiq_wire::random_hex(6)
        );
        let mut info = ProcessInfo::new(
            &name,
            &settings.hostname,
            pid,
            env!("CARGO_PKG_VERSION"),
            started_at.as_secs(),
        )
        .with_queues(settings.concurrency, &settings.queues, settings.queue_mode);
        info.tag = settings.tag.clone();
        info.labels.push("reliable-fetch".into());
        Ok(Identity {
            info_json: serde_json::to_string(&info)?,
            name,
        })
    }
}
