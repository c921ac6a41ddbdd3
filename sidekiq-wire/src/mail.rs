//! This project's job: `MailSenderJob`, and the Redis keys its progress is counted in.
//!
//! The args are one JSON object so the worker never needs the web's database:
//! `{"to": "...", "name": "...", "email_id": 1, "mail_job_id": 2, "simulate_error": false}`;
//! only `to` is required.

use crate::job::{Job, Retry};
use serde::{Deserialize, Serialize};

/// The job class name, as Ruby's `MailSenderJob` would have it.
pub const CLASS: &str = "MailSenderJob";
/// `sidekiq_options retry: 3`.
pub const RETRIES: i64 = 3;
/// The queue used unless the caller picks another (`high`).
pub const DEFAULT_QUEUE: &str = "default";

/// The single argument of a `MailSenderJob`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailSenderArgs {
    /// Recipient address.
    pub to: String,
    /// Recipient's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The web's `emails.id`, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_id: Option<i64>,
    /// The web's `mail_jobs.id`; progress is counted under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_job_id: Option<i64>,
    /// Fail about 30% of attempts on purpose (the seed's error simulation).
    #[serde(default)]
    pub simulate_error: bool,
}

/// The args of a job could not be read as [`MailSenderArgs`].
#[derive(Debug, thiserror::Error)]
#[error("MailSenderJob args must be [{{\"to\": ..}}]: {0}")]
pub struct BadArgs(String);

impl MailSenderArgs {
    /// A job for these args on `queue`, with `retry: 3`.
    pub fn into_job(self, queue: &str) -> Job {
        let arg = serde_json::to_value(&self).unwrap_or_default();
        Job::new(CLASS, vec![arg])
            .with_queue(queue)
            .with_retry(Retry::Max(RETRIES))
    }

    /// Reads the args of a `MailSenderJob`.
    ///
    /// # Errors
    /// Not exactly one argument, or one that is not an object with a String `to`.
    pub fn from_job(job: &Job) -> Result<Self, BadArgs> {
        match job.args() {
            [one] => serde_json::from_value(one.clone()).map_err(|e| BadArgs(e.to_string())),
            other => Err(BadArgs(format!("got {} arguments", other.len()))),
        }
    }
}

/// Progress counters of one bulk send: hash fields `sent`, `failed`, `retrying`.
///
/// The worker keeps them exact: each jid's state (`sent`, `retrying`, `dead`) is stored under
/// [`delivery_key`] and a state change moves one unit between counters in one Lua script,
/// so re-executing a job never counts it twice. `failed` counts jobs that died; a dead job
/// retried from the Web UI that then succeeds moves from `failed` to `sent`.
pub fn progress_key(mail_job_id: i64) -> String {
    format!("mailworker:progress:{mail_job_id}")
}

/// Where the state of one jid is remembered (`sent`, `retrying`, `dead`), so that a job
/// executed twice is mailed and counted once.
pub fn delivery_key(jid: &str) -> String {
    format!("mailworker:jid:{jid}")
}

/// How long progress and per-jid state are kept (7 days).
pub const PROGRESS_TTL_SECS: i64 = 7 * 24 * 60 * 60;

/// The counters of one bulk send as the worker left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages the SMTP server accepted.
    pub sent: i64,
    /// Jobs that died (retries exhausted or unrecoverable).
    pub failed: i64,
    /// Jobs waiting in the retry set right now.
    pub retrying: i64,
}

/// Reads the progress of several bulk sends in one round trip (missing ones read as zero).
///
/// # Errors
/// Redis errors.
pub async fn read_progress<C>(
    conn: &mut C,
    mail_job_ids: &[i64],
) -> Result<Vec<Progress>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    if mail_job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in mail_job_ids {
        pipe.cmd("HMGET")
            .arg(progress_key(*id))
            .arg(&["sent", "failed", "retrying"]);
    }
    let rows: Vec<(Option<i64>, Option<i64>, Option<i64>)> = pipe.query_async(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(s, f, r)| Progress {
            sent: s.unwrap_or(0),
            failed: f.unwrap_or(0),
            retrying: r.unwrap_or(0).max(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_round_trip_and_only_to_is_required() {
        let a = MailSenderArgs {
            to: "a@example.test".into(),
            name: Some("A".into()),
            email_id: Some(1),
            mail_job_id: Some(2),
            simulate_error: false,
        };
        let job = a.clone().into_job("high");
        assert_eq!(job.class(), "MailSenderJob");
        assert_eq!(job.queue(), Some("high"));
        assert_eq!(job.retry(), Retry::Max(3));
        assert_eq!(MailSenderArgs::from_job(&job).unwrap(), a);
        let minimal = Job::new(CLASS, vec![json!({"to": "b@example.test"})]);
        let m = MailSenderArgs::from_job(&minimal).unwrap();
        assert_eq!(m.to, "b@example.test");
        assert!(!m.simulate_error);
    }

    #[test]
    fn bad_args_are_errors() {
        for args in [
            vec![],
            vec![json!(1)],
            vec![json!({"name": "x"})],
            vec![json!({"to": 1})],
        ] {
            assert!(MailSenderArgs::from_job(&Job::new(CLASS, args)).is_err());
        }
    }
}
