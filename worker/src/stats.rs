//! Sidekiq's counters (`stat:processed`, `stat:failed`, the daily keys) and the Metrics-page
//! data of Sidekiq 7 and 8, accumulated in memory and flushed with every heartbeat, as Ruby
//! does. A flush that fails is merged back, so counts survive a Redis outage.

use chrono::{DateTime, Utc};
use sidekiq_wire::keys;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Histogram buckets (`metrics/shared.rb`).
const BUCKETS: usize = keys::HISTOGRAM_BOUNDS_MS.len() + 1;

/// Per class and minute: executions, failures, milliseconds of successful runs, histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassMinute {
    /// Executions (including failures).
    pub p: u64,
    /// Failures.
    pub f: u64,
    /// Wall milliseconds of successful executions.
    pub ms: u64,
    /// Successful executions per duration bucket.
    pub hist: [u64; BUCKETS],
}

/// What has not been flushed yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    /// Executions.
    pub processed: u64,
    /// Failed executions.
    pub failed: u64,
    /// Minute (epoch seconds, floored) ⇒ class ⇒ counts.
    pub minutes: BTreeMap<i64, HashMap<String, ClassMinute>>,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        self.processed += other.processed;
        self.failed += other.failed;
        for (minute, classes) in other.minutes {
            let here = self.minutes.entry(minute).or_default();
            for (class, m) in classes {
                let e = here.entry(class).or_default();
                e.p += m.p;
                e.f += m.f;
                e.ms += m.ms;
                for (a, b) in e.hist.iter_mut().zip(m.hist) {
                    *a += b;
                }
            }
        }
    }

    /// Nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.processed == 0 && self.failed == 0 && self.minutes.is_empty()
    }
}

/// The accumulator shared by all worker slots.
#[derive(Debug, Default)]
pub struct Stats {
    pending: Mutex<Pending>,
}

impl Stats {
    /// Records one execution of `class` that ended at `at` after `ms` milliseconds.
    pub fn record(&self, class: &str, at: DateTime<Utc>, ms: u64, failed: bool) {
        let minute = at.timestamp() - at.timestamp().rem_euclid(60);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.processed += 1;
        let m = p
            .minutes
            .entry(minute)
            .or_default()
            .entry(class.to_owned())
            .or_default();
        m.p += 1;
        if failed {
            m.f += 1;
            p.failed += 1;
        } else {
            m.ms += ms;
            m.hist[keys::histogram_bucket(ms)] += 1;
        }
    }

    /// Takes everything pending (to flush).
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back what a failed flush took.
    pub fn restore(&self, p: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn successes_count_time_and_histogram_failures_do_not() {
        let s = Stats::default();
        let at = Utc.with_ymd_and_hms(2026, 3, 5, 7, 4, 30).single().unwrap();
        s.record("MailSenderJob", at, 120, false);
        s.record("MailSenderJob", at, 5, false);
        s.record("MailSenderJob", at, 999, true);
        let p = s.take();
        assert_eq!((p.processed, p.failed), (3, 1));
        let m = &p.minutes[&(at.timestamp() - 30)]["MailSenderJob"];
        assert_eq!((m.p, m.f, m.ms), (3, 1, 125));
        assert_eq!(m.hist[0], 1);
        assert_eq!(m.hist[keys::histogram_bucket(120)], 1);
        assert!(s.take().is_empty());
        s.restore(p.clone());
        s.restore(p);
        assert_eq!(s.take().processed, 6);
    }
}
