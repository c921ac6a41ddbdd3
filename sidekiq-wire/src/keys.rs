//! Redis key names of Sidekiq's data model (no namespace: 7.0+ has none, and neither do we).

use chrono::{DateTime, Datelike, Timelike, Utc};

/// SET of known queue names; the Web UI only shows queues listed here.
pub const QUEUES: &str = "queues";
/// ZSET of scheduled jobs, scored by run time (float seconds).
pub const SCHEDULE: &str = "schedule";
/// ZSET of jobs waiting to be retried, scored by next retry time.
pub const RETRY: &str = "retry";
/// ZSET of dead jobs, scored by time of death.
pub const DEAD: &str = "dead";
/// SET of live process identities.
pub const PROCESSES: &str = "processes";
/// Total executions (including failures).
pub const STAT_PROCESSED: &str = "stat:processed";
/// Total failed executions.
pub const STAT_FAILED: &str = "stat:failed";
/// TTL of the daily stat keys: five years, as Sidekiq's `STATS_TTL`.
pub const STATS_TTL_SECS: i64 = 5 * 365 * 24 * 60 * 60;
/// Dead-set limits: entries older than 180 days are trimmed on each insertion…
pub const DEAD_TIMEOUT_SECS: f64 = 180.0 * 24.0 * 60.0 * 60.0;
/// …and so is everything below rank `-DEAD_MAX_JOBS` (so at most 9,999 stay, as in Ruby).
pub const DEAD_MAX_JOBS: i64 = 10_000;
/// TTL of a process heartbeat hash and its work hashes.
pub const HEARTBEAT_TTL_SECS: i64 = 60;
/// TTL of the 7.x/8.x per-minute metrics hashes and histograms (8 hours).
pub const METRICS_TTL_SECS: i64 = 8 * 60 * 60;
/// TTL of the 8.x ten-minute metrics hashes (3 days).
pub const METRICS_MID_TERM_TTL_SECS: i64 = 3 * 24 * 60 * 60;

/// The list holding a queue's jobs.
pub fn queue(name: &str) -> String {
    format!("queue:{name}")
}

/// The in-progress hash Sidekiq 6.4.2+, 7.x and 8.x read for the Busy page.
pub fn work(identity: &str) -> String {
    format!("{identity}:work")
}

/// The in-progress hash Sidekiq 6.4.1 (Debian's) reads for the Busy page.
pub fn workers(identity: &str) -> String {
    format!("{identity}:workers")
}

/// The list the Web UI pushes `TSTP`/`TERM`/`TTIN` to.
pub fn signals(identity: &str) -> String {
    format!("{identity}-signals")
}

/// `stat:processed:YYYY-MM-DD` (UTC).
pub fn stat_processed_daily(at: DateTime<Utc>) -> String {
    format!("stat:processed:{}", at.format("%Y-%m-%d"))
}

/// `stat:failed:YYYY-MM-DD` (UTC).
pub fn stat_failed_daily(at: DateTime<Utc>) -> String {
    format!("stat:failed:{}", at.format("%Y-%m-%d"))
}

/// Sidekiq 7.3 per-minute metrics hash: `j|%Y%m%d|%-H:%-M`.
pub fn metrics_minute_v7(at: DateTime<Utc>) -> String {
    format!("j|{}|{}:{}", at.format("%Y%m%d"), at.hour(), at.minute())
}

/// Sidekiq 8.x per-minute metrics hash: `j|%y%m%d|%-H:%M`.
pub fn metrics_minute_v8(at: DateTime<Utc>) -> String {
    format!("j|{}|{}:{:02}", at.format("%y%m%d"), at.hour(), at.minute())
}

/// Sidekiq 8.x ten-minute metrics hash: `j|%y%m%d|%-H:<tens digit of the minute>`.
pub fn metrics_ten_minutes_v8(at: DateTime<Utc>) -> String {
    format!(
        "j|{}|{}:{}",
        at.format("%y%m%d"),
        at.hour(),
        at.minute() / 10
    )
}

/// Sidekiq 7.3 histogram: `<Class>-%d-%H:%-M`.
pub fn histogram_v7(class: &str, at: DateTime<Utc>) -> String {
    format!("{class}-{:02}-{:02}:{}", at.day(), at.hour(), at.minute())
}

/// Sidekiq 8.x histogram: `h|<Class>-%-d-%-H:%-M`.
pub fn histogram_v8(class: &str, at: DateTime<Utc>) -> String {
    format!("h|{class}-{}-{}:{}", at.day(), at.hour(), at.minute())
}

/// Upper bounds (ms) of the 26 histogram buckets (`metrics/shared.rb` `BUCKET_INTERVALS`);
/// the last bucket takes everything above.
pub const HISTOGRAM_BOUNDS_MS: [u64; 25] = [
    20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1100, 1700, 2500, 3800, 5750, 8500, 13000, 20000,
    30000, 45000, 65000, 100000, 150000, 225000, 335000,
];

/// The histogram bucket of a successful execution lasting `ms` milliseconds.
pub fn histogram_bucket(ms: u64) -> usize {
    HISTOGRAM_BOUNDS_MS
        .iter()
        .position(|&bound| ms < bound)
        .unwrap_or(HISTOGRAM_BOUNDS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 5, h, m, 0).single().unwrap()
    }

    // Expected strings are the ones sidekiq-wire.md §2.7 records from each version's own flush.
    #[test]
    fn metrics_keys_match_the_reference() {
        assert_eq!(metrics_minute_v7(at(7, 4)), "j|20260305|7:4");
        assert_eq!(histogram_v7("RustJob", at(7, 4)), "RustJob-05-07:4");
        assert_eq!(metrics_minute_v8(at(7, 4)), "j|260305|7:04");
        assert_eq!(metrics_ten_minutes_v8(at(7, 4)), "j|260305|7:0");
        assert_eq!(metrics_ten_minutes_v8(at(7, 45)), "j|260305|7:4");
        assert_eq!(histogram_v8("RustJob", at(7, 4)), "h|RustJob-5-7:4");
        assert_eq!(metrics_minute_v7(at(17, 45)), "j|20260305|17:45");
        assert_eq!(metrics_minute_v8(at(0, 0)), "j|260305|0:00");
    }

    #[test]
    fn daily_stat_keys() {
        assert_eq!(
            stat_processed_daily(at(23, 59)),
            "stat:processed:2026-03-05"
        );
        assert_eq!(stat_failed_daily(at(0, 0)), "stat:failed:2026-03-05");
    }

    #[test]
    fn histogram_buckets() {
        assert_eq!(histogram_bucket(0), 0);
        assert_eq!(histogram_bucket(19), 0);
        assert_eq!(histogram_bucket(20), 1);
        assert_eq!(histogram_bucket(335_000), 25);
        assert_eq!(histogram_bucket(u64::MAX), 25);
    }
}
