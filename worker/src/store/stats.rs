//! Flushing Sidekiq's counters (`stat:processed`, `stat:failed`, the daily keys) and the
//! Metrics-page data of Sidekiq 7 and 8, in the layouts both versions read.

use crate::stats::Pending;
use chrono::{DateTime, TimeZone, Utc};
use sidekiq_wire::keys;

/// Adds the commands that flush `pending` to `pipe` (daily keys dated `now`, UTC).
pub fn add_flush(pipe: &mut redis::Pipeline, pending: &Pending, now: DateTime<Utc>) {
    if pending.processed > 0 {
        let daily = keys::stat_processed_daily(now);
        pipe.incr(keys::STAT_PROCESSED, pending.processed).ignore();
        pipe.incr(&daily, pending.processed).ignore();
        pipe.expire(&daily, keys::STATS_TTL_SECS).ignore();
    }
    if pending.failed > 0 {
        let daily = keys::stat_failed_daily(now);
        pipe.incr(keys::STAT_FAILED, pending.failed).ignore();
        pipe.incr(&daily, pending.failed).ignore();
        pipe.expire(&daily, keys::STATS_TTL_SECS).ignore();
    }
    for (minute, classes) in &pending.minutes {
        let Some(at) = Utc.timestamp_opt(*minute, 0).single() else {
            continue;
        };
        let hashes = [
            (keys::metrics_minute_v7(at), keys::METRICS_TTL_SECS),
            (keys::metrics_minute_v8(at), keys::METRICS_TTL_SECS),
            (
                keys::metrics_ten_minutes_v8(at),
                keys::METRICS_MID_TERM_TTL_SECS,
            ),
        ];
        for (key, ttl) in &hashes {
            for (class, m) in classes {
                for (suffix, n) in [("p", m.p), ("f", m.f), ("ms", m.ms)] {
                    if n > 0 {
                        pipe.hincr(key, format!("{class}|{suffix}"), n).ignore();
                    }
                }
            }
            pipe.expire(key, *ttl).ignore();
        }
        for (class, m) in classes {
            if m.hist.iter().all(|n| *n == 0) {
                continue;
            }
            for key in [keys::histogram_v7(class, at), keys::histogram_v8(class, at)] {
                let mut cmd = redis::cmd("BITFIELD");
                cmd.arg(&key).arg("OVERFLOW").arg("SAT");
                for (i, n) in m.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
                    cmd.arg("INCRBY").arg("u16").arg(format!("#{i}")).arg(*n);
                }
                pipe.add_command(cmd).ignore();
                pipe.expire(&key, keys::METRICS_TTL_SECS).ignore();
            }
        }
    }
}
