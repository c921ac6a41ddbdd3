//! `MailSenderJob`: its class name, retry policy, queues and arguments.
//!
//! The args are one JSON object so the worker never needs the web's database:
//! `{"to": "...", "name": "...", "email_id": 1, "mail_job_id": 2, "instance": "9f…",
//! "simulate_error": false}`; only `to` is required.

use serde::{Deserialize, Serialize};
use sidekiq_wire::{Job, Retry};

/// The job class name, as Ruby's `MailSenderJob` would have it.
pub const CLASS: &str = "MailSenderJob";
/// `sidekiq_options retry: 3`.
pub const RETRIES: i64 = 3;
/// The queue used unless the caller picks another (`high`).
pub const DEFAULT_QUEUE: &str = "default";
/// The queue the worker weights 2:1 over [`DEFAULT_QUEUE`] (`WORKER_QUEUES=high,2 default,1`).
pub const HIGH_QUEUE: &str = "high";

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
    /// The instance id of the web database that recorded the send. Ids restart at 1 in a
    /// database recreated after a loss; with the instance in the key, jobs of a lost
    /// database's send are never counted into a new send with the same id. Absent in
    /// payloads written before it existed: those count under the bare id, as then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Fail about 30% of attempts on purpose (the seed's error simulation).
    #[serde(default)]
    pub simulate_error: bool,
}

/// The bulk send a job is counted toward, as it appears in Redis keys and in
/// [`crate::keys::RETRYING_INDEX`]: `<instance>:<mail_job_id>` (or the bare id for sends
/// recorded before databases had an instance id). Opaque to the worker: only the web builds
/// one from its own ids; the worker takes it from a job's args or from the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(String);

impl SendId {
    /// The send recorded as `mail_jobs.id = mail_job_id` in the web database `instance`.
    pub fn new(instance: &str, mail_job_id: i64) -> Self {
        SendId(format!("{instance}:{mail_job_id}"))
    }

    /// A send recorded before databases had an instance id: the bare `mail_job_id`, as
    /// such jobs' payloads (no `instance`) are counted.
    pub fn for_mail_job(mail_job_id: i64) -> Self {
        SendId(mail_job_id.to_string())
    }

    /// A send id as stored in Redis (a member of [`crate::keys::RETRYING_INDEX`]).
    pub fn from_stored(stored: String) -> Self {
        SendId(stored)
    }

    /// The form used in keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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

    /// [`MailSenderArgs::send_id`] for Lua scripts that must count a job they cannot hand
    /// to Rust (one too big to read): `send_id_of(decoded_job)` returns the same string, or
    /// `nil` for a job that counts toward no send.
    pub const SEND_ID_LUA: &'static str = r"
local function send_id_of(job)
  if type(job) ~= 'table' or job['class'] ~= 'MailSenderJob' or type(job['args']) ~= 'table' then return nil end
  local a = job['args'][1]
  if type(a) ~= 'table' or type(a['mail_job_id']) ~= 'number' then return nil end
  local id = string.format('%d', a['mail_job_id'])
  if type(a['instance']) == 'string' then return a['instance'] .. ':' .. id end
  return id
end
";

    /// The bulk send this job counts toward, if any.
    pub fn send_id(&self) -> Option<SendId> {
        let id = self.mail_job_id?;
        Some(match self.instance.as_deref() {
            Some(instance) => SendId::new(instance, id),
            None => SendId::for_mail_job(id),
        })
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
            instance: Some("9f00".into()),
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
        assert_eq!(m.send_id(), None);
    }

    #[test]
    fn the_send_id_carries_the_instance_and_old_payloads_keep_theirs() {
        let new = Job::new(
            CLASS,
            vec![json!({"to": "a@example.test", "mail_job_id": 1, "instance": "9f00"})],
        );
        let new = MailSenderArgs::from_job(&new).unwrap().send_id().unwrap();
        assert_eq!(new.as_str(), "9f00:1");
        assert_eq!(new, SendId::new("9f00", 1));
        // Written before the field existed: counted under the bare id, as the worker did.
        let old = Job::new(
            CLASS,
            vec![json!({"to": "a@example.test", "mail_job_id": 1})],
        );
        let old = MailSenderArgs::from_job(&old).unwrap().send_id().unwrap();
        assert_eq!(old.as_str(), "1");
        // Same id, another database: another send.
        assert_ne!(SendId::new("9f00", 1), SendId::new("a1b2", 1));
        assert_ne!(new, old);
        // And it survives the retrying index (stored as its string).
        assert_eq!(SendId::from_stored(new.as_str().to_owned()), new);
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
