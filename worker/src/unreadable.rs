//! Payloads that cannot be run at all: not UTF-8 text, or text that is not a job. They go to
//! the dead set and are never retried or counted, as Ruby does with malformed JSON.

use sidekiq_wire::{Job, JobError, Retry, Timestamp};

/// Class name of the dead-set entry that stands for a payload that is not UTF-8 text.
pub const UNDECODABLE_CLASS: &str = "UndecodablePayload";

/// Why a fetched payload cannot be run at all.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Not UTF-8 text (any client can push raw bytes).
    #[error("payload is not UTF-8 text ({0} bytes)")]
    NotText(usize),
    /// Text, but not a job (not JSON, or missing `class`/`args`/`jid`, …).
    #[error(transparent)]
    NotAJob(#[from] JobError),
}

/// Reads the job out of a fetched payload.
///
/// # Errors
/// [`Unreadable`].
pub fn read_job(payload: &[u8]) -> Result<Job, Unreadable> {
    let text = std::str::from_utf8(payload).map_err(|_| Unreadable::NotText(payload.len()))?;
    Ok(Job::parse(text)?)
}

/// The dead-set entry for a payload that is not text: a job the Web UI can show, with the
/// reason, and the original bytes in `raw_payload_base64`. Retrying it from the Dead page
/// fails again at once (no handler), so nothing is lost by accident.
pub fn dead_entry_for_bytes(raw: &[u8], source: &str, now: Timestamp) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut job = Job::new(UNDECODABLE_CLASS, vec![])
        .with_queue(source)
        .with_retry(Retry::Max(0));
    job.set_error(
        "UndecodablePayloadError",
        &format!(
            "a payload taken from {source} is not UTF-8 text ({} bytes); the original bytes are in raw_payload_base64",
            raw.len()
        ),
    );
    job.set_failed_at(now);
    job.set_retry_count(0);
    // A String is valid for any key without a rule; this cannot fail.
    let _ = job.set("raw_payload_base64", serde_json::Value::String(encoded));
    job.to_json_string()
}
