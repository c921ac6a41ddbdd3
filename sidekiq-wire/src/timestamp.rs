//! Epoch timestamps as Sidekiq stores them.
//!
//! Sidekiq 6.4 and 7.x write `created_at`, `enqueued_at`, `failed_at` and `retried_at` as
//! float seconds; 8.x writes integer milliseconds and reads a float as seconds. So the
//! *JSON type* carries the unit: float ⇒ seconds, integer ⇒ milliseconds. We always write
//! float seconds with a decimal point, the one format all three Web UIs render correctly.
//! Other producers (the `sidekiq` crate 0.14) write *integer seconds*; an integer too small
//! to be milliseconds of any date after 1973 is read as seconds.

use serde_json::{Number, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Integers below this are epoch seconds: as milliseconds they would lie before 1973-03-03,
/// as seconds the bound is in the year 5138, so no plausible time is ambiguous.
const SECONDS_BELOW: i64 = 100_000_000_000;

/// A point in time, held as epoch seconds.
///
/// ```
/// use sidekiq_wire::Timestamp;
/// use serde_json::json;
///
/// // Sidekiq 8 writes integer milliseconds, 6.4 and 7.x float seconds: the JSON type says which.
/// let ms = Timestamp::from_json(&json!(1732400000500_i64)).unwrap().unwrap();
/// let secs = Timestamp::from_json(&json!(1732400000.5)).unwrap().unwrap();
/// assert_eq!(ms, secs);
/// // Written back as float seconds, the one form all three Web UIs render.
/// assert_eq!(secs.to_json().to_string(), "1732400000.5");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Timestamp(f64);

/// A timestamp field held something that is not a time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a timestamp: {found}")]
#[non_exhaustive]
pub struct NotATimestamp {
    /// The JSON value found instead.
    pub found: Value,
}

fn not_a_timestamp(found: &Value) -> NotATimestamp {
    NotATimestamp {
        found: found.clone(),
    }
}

impl Timestamp {
    /// The current wall-clock time, rounded to microseconds like Ruby's `Time.now.to_f`.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_secs(d.as_secs_f64())
    }

    /// From epoch seconds, rounded to microseconds so the JSON stays short.
    pub fn from_secs(secs: f64) -> Self {
        Timestamp((secs * 1e6).round() / 1e6)
    }

    /// From epoch milliseconds (Sidekiq 8's native unit).
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms as f64 / 1000.0)
    }

    /// Epoch seconds.
    pub fn as_secs(self) -> f64 {
        self.0
    }

    /// Whole epoch seconds, the unit of a work entry's `run_at`.
    pub fn as_whole_secs(self) -> i64 {
        self.0.floor() as i64
    }

    /// This timestamp moved by `secs` seconds.
    pub fn plus_secs(self, secs: f64) -> Self {
        Self::from_secs(self.0 + secs)
    }

    /// Reads a JSON value by Sidekiq 8's rule: float ⇒ seconds, integer ⇒ milliseconds
    /// (except integers below 10¹¹, which are seconds).
    /// Numeric strings (written by some Sidekiq Pro Lua paths) are parsed, then the same
    /// rule applies to what they spell. `null` reads as absent.
    ///
    /// # Errors
    /// Anything else (objects, arrays, booleans, non-numeric strings, non-finite numbers).
    pub fn from_json(value: &Value) -> Result<Option<Self>, NotATimestamp> {
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => Self::from_number(n)
                .map(Some)
                .ok_or_else(|| not_a_timestamp(value)),
            Value::String(s) => Self::from_numeric_str(s.trim())
                .map(Some)
                .ok_or_else(|| not_a_timestamp(value)),
            other => Err(not_a_timestamp(other)),
        }
    }

    /// An integer timestamp: milliseconds (Sidekiq 8), or seconds when it is too small to be
    /// milliseconds of a plausible date (integer-second producers).
    fn from_integer(i: i64) -> Self {
        if i.abs() < SECONDS_BELOW {
            Timestamp(i as f64)
        } else {
            Self::from_millis(i)
        }
    }

    fn from_number(n: &Number) -> Option<Self> {
        if let Some(i) = n.as_i64() {
            return Some(Self::from_integer(i));
        }
        if n.is_u64() {
            return None; // beyond i64 milliseconds: not a plausible time
        }
        n.as_f64().filter(|f| f.is_finite()).map(Timestamp)
    }

    fn from_numeric_str(s: &str) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return s.parse::<i64>().ok().map(Self::from_integer);
        }
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Timestamp)
    }

    /// The JSON to store: float seconds, always with a fraction part.
    pub fn to_json(self) -> Value {
        // serde_json prints an integral f64 as `1732400000.0`, so the decimal point survives.
        Number::from_f64(self.0).map_or(Value::Null, Value::Number)
    }

    /// The same instant as a UTC date-time (for date-keyed stats and display).
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros((self.0 * 1e6).round() as i64).unwrap_or_default()
    }

    /// A sorted-set score string as Ruby's `Float#to_s` writes it.
    pub fn to_score(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_is_seconds_and_integer_is_milliseconds() {
        let f = Timestamp::from_json(&json!(1795493142.5)).unwrap().unwrap();
        let i = Timestamp::from_json(&json!(1795493142500_i64))
            .unwrap()
            .unwrap();
        assert_eq!(f, i);
        assert_eq!(f.as_secs(), 1795493142.5);
    }

    #[test]
    fn small_integers_are_seconds() {
        // What the `sidekiq` crate writes: integer epoch seconds.
        let s = Timestamp::from_json(&json!(1795493142_i64))
            .unwrap()
            .unwrap();
        assert_eq!(s.as_secs(), 1795493142.0);
        let s = Timestamp::from_json(&json!("1795493142")).unwrap().unwrap();
        assert_eq!(s.as_secs(), 1795493142.0);
        // The smallest milliseconds value still read as milliseconds: 1973-03-03.
        let ms = Timestamp::from_json(&json!(SECONDS_BELOW))
            .unwrap()
            .unwrap();
        assert_eq!(ms.as_secs(), 100_000_000.0);
    }

    #[test]
    fn numeric_strings_follow_the_same_rule() {
        let s = Timestamp::from_json(&json!("1732400000.1"))
            .unwrap()
            .unwrap();
        assert_eq!(s.as_secs(), 1732400000.1);
        let ms = Timestamp::from_json(&json!("1732400000100"))
            .unwrap()
            .unwrap();
        assert_eq!(ms.as_secs(), 1732400000.1);
    }

    #[test]
    fn garbage_is_an_error_and_null_is_absent() {
        assert!(Timestamp::from_json(&json!("soon")).is_err());
        assert!(Timestamp::from_json(&json!({"a": 1})).is_err());
        assert!(Timestamp::from_json(&json!(true)).is_err());
        assert!(Timestamp::from_json(&json!("")).is_err());
        assert_eq!(Timestamp::from_json(&Value::Null), Ok(None));
    }

    #[test]
    fn whole_seconds_are_written_with_a_decimal_point() {
        let t = Timestamp::from_secs(1732400000.0);
        assert_eq!(serde_json::to_string(&t.to_json()).unwrap(), "1732400000.0");
    }

    #[test]
    fn converts_to_utc_datetime() {
        let t = Timestamp::from_secs(1_772_694_240.5); // 2026-03-05 07:04:00.5 UTC
        assert_eq!(
            t.to_datetime().to_rfc3339(),
            "2026-03-05T07:04:00.500+00:00"
        );
    }

    #[test]
    fn now_is_microsecond_rounded() {
        let t = Timestamp::now().as_secs();
        assert_eq!((t * 1e6).round() / 1e6, t);
        assert!(t > 1.7e9);
    }
}
