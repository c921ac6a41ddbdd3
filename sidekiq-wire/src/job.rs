//! A Sidekiq job payload.
//!
//! Ruby Sidekiq treats a job as a hash and every middleware, Pro feature and Web UI action adds
//! or edits keys in it. We do the same: a [`Job`] *is* the parsed JSON object (key order kept),
//! validated once on the way in and read through typed accessors. Keys we do not know
//! (`wrapped`, `bid`, `tags`, `cattr`, …) are never touched, so they are written back unchanged.

use crate::timestamp::{NotATimestamp, Timestamp};
use serde_json::{Map, Value};

/// Payload keys that carry timestamps; each is validated on parse and on edit.
const TIMESTAMP_KEYS: [&str; 4] = ["created_at", "enqueued_at", "failed_at", "retried_at"];

/// Keys every job has; they can be changed (to a valid value) but not removed.
const REQUIRED_KEYS: [&str; 3] = ["class", "args", "jid"];

/// Sidekiq's default number of retries for `retry: true`.
pub const DEFAULT_MAX_RETRIES: i64 = 25;

/// Why a payload cannot be run, or why an edit was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The bytes are not JSON at all.
    #[error("payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but not an object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// A key every job needs is absent.
    #[error("payload has no `{0}`")]
    Missing(&'static str),
    /// A key holds the wrong JSON type.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// The key.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// A timestamp key holds something that is not a time.
    #[error("`{field}`: {source}")]
    BadTimestamp {
        /// The key.
        field: &'static str,
        /// The value found.
        source: NotATimestamp,
    },
    /// An edit would remove a key every job needs.
    #[error("`{0}` is required and cannot be removed")]
    Required(&'static str),
}

/// The job's `retry` option, read exactly as Ruby's `retry_attempts_from` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// `false` or `null`: a failure discards the job (no retry, no dead set).
    Disabled,
    /// `true`, absent, or any other truthy value: [`DEFAULT_MAX_RETRIES`].
    Default,
    /// A JSON integer: that many retries (`0` ⇒ straight to the dead set).
    Max(i64),
}

impl Retry {
    /// Retries allowed, or `None` when failures are discarded.
    pub fn max_retries(self) -> Option<i64> {
        match self {
            Retry::Disabled => None,
            Retry::Default => Some(DEFAULT_MAX_RETRIES),
            Retry::Max(n) => Some(n),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Retry::Disabled => Value::Bool(false),
            Retry::Default => Value::Bool(true),
            Retry::Max(n) => Value::from(n),
        }
    }
}

/// The job's `backtrace` option: how many lines of `error_backtrace` to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacktraceOption {
    /// Absent or false: store none.
    None,
    /// `true`: store every line.
    All,
    /// An integer: store the first N lines.
    Lines(usize),
}

/// A new job id: 24 lowercase hex characters, like Ruby's `SecureRandom.hex(12)`.
pub fn new_jid() -> String {
    random_hex(12)
}

/// `bytes` random bytes as lowercase hex, like Ruby's `SecureRandom.hex(bytes)`: what Sidekiq
/// uses for jids and process nonces. The generator is the thread-local CSPRNG, so the result
/// also serves as a token.
pub fn random_hex(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rand::random();
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    s
}

/// A job payload: Sidekiq's hash, validated, with typed accessors.
///
/// Every way to build or edit one keeps it valid, so whatever [`Job::to_json_string`] writes
/// parses again and renders in the Web UI:
///
/// ```
/// use sidekiq_wire::{Job, Retry};
/// use serde_json::json;
///
/// let job = Job::new("MailSenderJob", vec![json!({"to": "a@example.test"})])
///     .with_queue("high")
///     .with_retry(Retry::Max(3));
/// let stored = job.to_json_string();
/// let read = Job::parse(&stored)?;
/// assert_eq!(read.queue(), Some("high"));
/// assert_eq!(read.retry().max_retries(), Some(3));
/// // An edit that would make it unreadable is refused.
/// assert!(read.clone().with("class", json!(42)).is_err());
/// # Ok::<(), sidekiq_wire::JobError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    fields: Map<String, Value>,
}

impl Job {
    /// A new job the way `Sidekiq::Client` builds one: `class`, `args`, queue `default`,
    /// `retry: true`, a fresh jid and `created_at` now. Adjust with the `with_*` methods.
    pub fn new(class: impl Into<String>, args: Vec<Value>) -> Self {
        let mut fields = Map::new();
        fields.insert("retry".into(), Value::Bool(true));
        fields.insert("queue".into(), Value::from("default"));
        fields.insert("class".into(), Value::String(class.into()));
        fields.insert("args".into(), Value::Array(args));
        fields.insert("jid".into(), Value::String(new_jid()));
        fields.insert("created_at".into(), Timestamp::now().to_json());
        Job { fields }
    }

    /// Parses and validates a payload string as read from Redis.
    ///
    /// # Errors
    /// See [`JobError`]: not JSON, not an object, no String `class`, no Array `args`,
    /// no String `jid`, a non-String `queue`, a non-integer `retry_count`, or a timestamp
    /// key that is not a number (numeric strings are tolerated).
    pub fn parse(payload: &str) -> Result<Self, JobError> {
        Self::from_value(serde_json::from_str(payload)?)
    }

    /// Validates an already parsed JSON value (see [`Job::parse`]).
    ///
    /// # Errors
    /// As [`Job::parse`].
    pub fn from_value(value: Value) -> Result<Self, JobError> {
        let Value::Object(fields) = value else {
            return Err(JobError::NotAnObject);
        };
        let job = Job { fields };
        job.validate()?;
        Ok(job)
    }

    fn validate(&self) -> Result<(), JobError> {
        for key in REQUIRED_KEYS {
            if !self.fields.contains_key(key) {
                return Err(JobError::Missing(key));
            }
        }
        for (key, value) in &self.fields {
            check_value(key, value)?;
        }
        Ok(())
    }

    /// Sets the queue (builder style).
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.set_queue(queue);
        self
    }

    /// Sets the `retry` option (builder style).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.fields.insert("retry".into(), retry.to_json());
        self
    }

    /// Sets any other option or extra key (builder style), e.g. `backtrace`, `tags`.
    ///
    /// # Errors
    /// A value that breaks the payload rules of [`Job::parse`] (a non-String `class`, a
    /// timestamp that is not a time, …); the job is not changed.
    pub fn with(mut self, key: &str, value: Value) -> Result<Self, JobError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// The job class name.
    pub fn class(&self) -> &str {
        self.str_field("class").unwrap_or_default()
    }

    /// The name to show and to count metrics under: `wrapped` (ActiveJob) if present, else `class`.
    pub fn display_class(&self) -> &str {
        self.str_field("wrapped").unwrap_or_else(|| self.class())
    }

    /// The positional arguments.
    pub fn args(&self) -> &[Value] {
        match self.fields.get("args") {
            Some(Value::Array(a)) => a,
            _ => &[],
        }
    }

    /// The job id.
    pub fn jid(&self) -> &str {
        self.str_field("jid").unwrap_or_default()
    }

    /// The queue named in the payload, if any (6.4 tolerates its absence).
    pub fn queue(&self) -> Option<&str> {
        self.str_field("queue")
    }

    /// `retry_queue`: where failed attempts are retried instead of `queue`.
    pub fn retry_queue(&self) -> Option<&str> {
        self.str_field("retry_queue")
    }

    /// The `retry` option. An absent key reads as [`Retry::Default`], Ruby's class default.
    pub fn retry(&self) -> Retry {
        match self.fields.get("retry") {
            None => Retry::Default,
            Some(Value::Bool(false) | Value::Null) => Retry::Disabled,
            Some(Value::Number(n)) if n.is_i64() => Retry::Max(n.as_i64().unwrap_or_default()),
            Some(_) => Retry::Default,
        }
    }

    /// `dead: false` asks for exhausted jobs to be discarded instead of kept in the dead set.
    pub fn dead_set_enabled(&self) -> bool {
        !matches!(self.fields.get("dead"), Some(Value::Bool(false)))
    }

    /// The `backtrace` option.
    pub fn backtrace_option(&self) -> BacktraceOption {
        match self.fields.get("backtrace") {
            Some(Value::Bool(true)) => BacktraceOption::All,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) | None => BacktraceOption::None,
                Some(k) => BacktraceOption::Lines(usize::try_from(k).unwrap_or(usize::MAX)),
            },
            _ => BacktraceOption::None,
        }
    }

    /// Failures so far minus one (`0` after the first failure); `None` if it never failed.
    /// Can be `-1` after a "Retry now" from the Web UI.
    pub fn retry_count(&self) -> Option<i64> {
        self.fields.get("retry_count").and_then(integer_of)
    }

    /// When the job was created.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.timestamp("created_at")
    }

    /// When the job was last pushed to a queue.
    pub fn enqueued_at(&self) -> Option<Timestamp> {
        self.timestamp("enqueued_at")
    }

    /// When the job first failed.
    pub fn failed_at(&self) -> Option<Timestamp> {
        self.timestamp("failed_at")
    }

    /// When the job last failed.
    pub fn retried_at(&self) -> Option<Timestamp> {
        self.timestamp("retried_at")
    }

    /// The last error's class name.
    pub fn error_class(&self) -> Option<&str> {
        self.str_field("error_class")
    }

    /// The last error's message.
    pub fn error_message(&self) -> Option<&str> {
        self.str_field("error_message")
    }

    /// The stored `error_backtrace` string (see [`crate::backtrace`]).
    pub fn error_backtrace(&self) -> Option<&str> {
        self.str_field("error_backtrace")
    }

    /// Any key, as stored.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Every key, in stored order.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Sets the queue.
    pub fn set_queue(&mut self, queue: impl Into<String>) {
        self.fields
            .insert("queue".into(), Value::String(queue.into()));
    }

    /// Sets `enqueued_at`, as every push to a queue list does.
    pub fn set_enqueued_at(&mut self, at: Timestamp) {
        self.fields.insert("enqueued_at".into(), at.to_json());
    }

    /// Sets `created_at` unless the job already has one (Sidekiq never overwrites it).
    pub fn ensure_created_at(&mut self, at: Timestamp) {
        if !matches!(self.fields.get("created_at"), Some(v) if !v.is_null()) {
            self.fields.insert("created_at".into(), at.to_json());
        }
    }

    /// Sets `retry_count`.
    pub fn set_retry_count(&mut self, count: i64) {
        self.fields.insert("retry_count".into(), Value::from(count));
    }

    /// Removes `at`: a payload is never stored with it (the sorted set's score is the time).
    pub fn clear_at(&mut self) {
        self.fields.shift_remove("at");
    }

    /// Removes `enqueued_at` (scheduled members have none until they reach a queue).
    pub fn clear_enqueued_at(&mut self) {
        self.fields.shift_remove("enqueued_at");
    }

    /// Sets `failed_at` (the first failure).
    pub fn set_failed_at(&mut self, at: Timestamp) {
        self.fields.insert("failed_at".into(), at.to_json());
    }

    /// Sets `retried_at` (the latest failure after the first).
    pub fn set_retried_at(&mut self, at: Timestamp) {
        self.fields.insert("retried_at".into(), at.to_json());
    }

    /// Records the latest error: `error_class` and `error_message`.
    pub fn set_error(&mut self, class: &str, message: &str) {
        self.fields
            .insert("error_message".into(), Value::String(message.to_owned()));
        self.fields
            .insert("error_class".into(), Value::String(class.to_owned()));
    }

    /// Stores `lines` as `error_backtrace`, encoded as Sidekiq 7/8 store it.
    pub fn set_error_backtrace(&mut self, lines: &[String]) {
        self.fields.insert(
            "error_backtrace".into(),
            Value::String(crate::backtrace::encode(lines)),
        );
    }

    /// Sets any key, if the value keeps the payload valid.
    ///
    /// # Errors
    /// A value that breaks the payload rules of [`Job::parse`]; nothing is changed.
    pub fn set(&mut self, key: &str, value: Value) -> Result<(), JobError> {
        check_value(key, &value)?;
        self.fields.insert(key.to_owned(), value);
        Ok(())
    }

    /// Rewrites each timestamp field held as a JSON integer (Sidekiq 8's milliseconds, or the
    /// integer seconds of producers such as the `sidekiq` crate) or as a numeric string as
    /// float seconds, the one spelling 6.4, 7.x and 8.x all render correctly: an
    /// integer-second `created_at` shows as January 1970 in 8.x, an integer-millisecond one
    /// as the year 58866 in 6.4/7.x, and a string makes the job pages fail.
    /// Meant for payloads being rewritten anyway (a failure into `retry` or `dead`); an
    /// untouched payload keeps its bytes.
    pub fn normalize_timestamps(&mut self) {
        for key in TIMESTAMP_KEYS {
            let Some(value) = self.fields.get(key) else {
                continue;
            };
            if value.is_f64() {
                continue;
            }
            if let Ok(Some(t)) = Timestamp::from_json(value) {
                self.fields.insert(key.into(), t.to_json());
            }
        }
    }

    /// Removes a key (e.g. `enqueued_at` from scheduled members, `at` everywhere).
    ///
    /// # Errors
    /// [`JobError::Required`] for `class`, `args` and `jid`; nothing is changed.
    pub fn remove(&mut self, key: &str) -> Result<Option<Value>, JobError> {
        if let Some(required) = REQUIRED_KEYS.iter().find(|k| **k == key) {
            return Err(JobError::Required(required));
        }
        Ok(self.fields.shift_remove(key))
    }

    /// The payload as Sidekiq stores it: compact JSON.
    pub fn to_json_string(&self) -> String {
        // Serializing a Map of Values cannot fail (string keys, no non-finite floats).
        serde_json::to_string(&self.fields).unwrap_or_default()
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    fn timestamp(&self, key: &str) -> Option<Timestamp> {
        self.fields
            .get(key)
            .and_then(|v| Timestamp::from_json(v).ok().flatten())
    }
}

fn wrong(field: &'static str, expected: &'static str) -> JobError {
    JobError::WrongType { field, expected }
}

/// The rules a value must follow under `key` for the payload to stay runnable and renderable
/// in every Web UI version; keys without a rule take any value.
fn check_value(key: &str, value: &Value) -> Result<(), JobError> {
    match (key, value) {
        ("class", Value::String(_))
        | ("args", Value::Array(_))
        | ("jid", Value::String(_))
        | ("queue", Value::String(_)) => Ok(()),
        ("class", _) => Err(wrong("class", "a String")),
        ("args", _) => Err(wrong("args", "an Array")),
        ("jid", _) => Err(wrong("jid", "a String")),
        ("queue", _) => Err(wrong("queue", "a String")),
        ("retry_count", v) if !v.is_null() && integer_of(v).is_none() => {
            Err(wrong("retry_count", "an Integer"))
        }
        (k, v) => match TIMESTAMP_KEYS.iter().find(|t| **t == k) {
            Some(field) => Timestamp::from_json(v)
                .map(|_| ())
                .map_err(|source| JobError::BadTimestamp { field, source }),
            None => Ok(()),
        },
    }
}

/// An integer, an integral float, or a string spelling an integer.
fn integer_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jids_are_24_lowercase_hex() {
        for _ in 0..100 {
            let j = new_jid();
            assert_eq!(j.len(), 24);
            assert!(
                j.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        assert_ne!(new_jid(), new_jid());
    }

    #[test]
    fn sidekiq_8_payload_with_mixed_timestamps_parses() {
        let raw = r#"{"retry":3,"queue":"default","class":"MailSenderJob","args":[{"to":"a@example.test"}],"jid":"5f0c6e1a2b3c4d5e6f708192","created_at":1732400000.123456,"enqueued_at":1732400030123,"failed_at":1732400031000,"retry_count":-1,"bid":"b-1","tags":["x"]}"#;
        let job = Job::parse(raw).unwrap();
        assert_eq!(job.class(), "MailSenderJob");
        assert_eq!(job.retry(), Retry::Max(3));
        assert_eq!(job.retry_count(), Some(-1));
        assert_eq!(job.created_at().unwrap().as_secs(), 1732400000.123456);
        assert_eq!(job.enqueued_at().unwrap().as_secs(), 1732400030.123);
        assert_eq!(job.failed_at().unwrap().as_secs(), 1732400031.0);
        assert_eq!(
            job.to_json_string(),
            raw,
            "an untouched payload is written back byte for byte"
        );
    }

    #[test]
    fn retry_reads_like_ruby() {
        let base = json!({"class":"A","args":[],"jid":"x"});
        let with = |v: Value| {
            let mut o = base.clone();
            o["retry"] = v;
            Job::from_value(o).unwrap().retry()
        };
        assert_eq!(with(json!(true)), Retry::Default);
        assert_eq!(with(json!(false)), Retry::Disabled);
        assert_eq!(with(Value::Null), Retry::Disabled);
        assert_eq!(with(json!(0)), Retry::Max(0));
        assert_eq!(
            with(json!("3")),
            Retry::Default,
            "only a JSON Integer is a count"
        );
        assert_eq!(Job::from_value(base).unwrap().retry(), Retry::Default);
    }

    #[test]
    fn numeric_string_retry_count_is_tolerated() {
        let job = Job::parse(r#"{"class":"A","args":[],"jid":"x","retry_count":"2"}"#).unwrap();
        assert_eq!(job.retry_count(), Some(2));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        for bad in [
            "not json",
            "[]",
            "42",
            r#"{"args":[],"jid":"x"}"#,
            r#"{"class":1,"args":[],"jid":"x"}"#,
            r#"{"class":"A","jid":"x"}"#,
            r#"{"class":"A","args":{},"jid":"x"}"#,
            r#"{"class":"A","args":[]}"#,
            r#"{"class":"A","args":[],"jid":"x","queue":5}"#,
            r#"{"class":"A","args":[],"jid":"x","retry_count":"two"}"#,
            r#"{"class":"A","args":[],"jid":"x","enqueued_at":"later"}"#,
            r#"{"class":"A","args":[],"jid":"x","failed_at":[1]}"#,
        ] {
            assert!(Job::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn normalize_timestamps_writes_integers_as_float_seconds() {
        let raw = r#"{"class":"A","args":[],"jid":"x","created_at":1795493142,"enqueued_at":1795493172500,"failed_at":1795493200.25,"retried_at":"1795493300"}"#;
        let mut job = Job::parse(raw).unwrap();
        assert_eq!(job.to_json_string(), raw, "untouched until asked");
        job.normalize_timestamps();
        let v: Value = serde_json::from_str(&job.to_json_string()).unwrap();
        assert_eq!(v["created_at"], json!(1795493142.0), "integer seconds");
        assert_eq!(
            v["enqueued_at"],
            json!(1795493172.5),
            "integer milliseconds"
        );
        assert_eq!(v["failed_at"], json!(1795493200.25), "floats stay");
        assert_eq!(
            v["retried_at"],
            json!(1795493300.0),
            "numeric strings become numbers"
        );
        assert!(v["created_at"].is_f64());
    }

    #[test]
    fn new_jobs_look_like_ruby_client_jobs() {
        let job = Job::new("MailSenderJob", vec![json!({"to": "a@example.test"})])
            .with_retry(Retry::Max(3));
        let v: Value = serde_json::from_str(&job.to_json_string()).unwrap();
        assert_eq!(v["class"], "MailSenderJob");
        assert_eq!(v["queue"], "default");
        assert_eq!(v["retry"], 3);
        assert!(v["created_at"].is_f64());
        assert!(v.get("at").is_none());
        assert!(v.get("enqueued_at").is_none());
    }

    #[test]
    fn backtrace_option() {
        let j = |v: Value| {
            Job::from_value(json!({"class":"A","args":[],"jid":"x","backtrace":v})).unwrap()
        };
        assert_eq!(j(json!(true)).backtrace_option(), BacktraceOption::All);
        assert_eq!(j(json!(5)).backtrace_option(), BacktraceOption::Lines(5));
        assert_eq!(j(json!(false)).backtrace_option(), BacktraceOption::None);
    }

    #[test]
    fn edits_cannot_break_what_parse_guarantees() {
        let mut job = Job::new("A", vec![]);
        assert!(matches!(
            job.set("class", json!(1)),
            Err(JobError::WrongType { field: "class", .. })
        ));
        assert!(job.set("args", json!({})).is_err());
        assert!(job.set("enqueued_at", json!("later")).is_err());
        assert!(job.set("retry_count", json!("two")).is_err());
        assert!(matches!(job.remove("jid"), Err(JobError::Required("jid"))));
        assert_eq!(job.class(), "A", "a refused edit changes nothing");
        job.set("tags", json!(["x"])).unwrap();
        job.set("retry_count", json!(2)).unwrap();
        assert_eq!(job.remove("tags").unwrap(), Some(json!(["x"])));
        assert!(Job::parse(&job.to_json_string()).is_ok());
    }
}
