//! A bulk send and its progress: the status its counters imply and how the worker's live
//! counters merge into the stored row.
//!
//! The worker never touches SQLite: it counts in Redis (`mailworker:progress:<id>`, exact).
//! The web merges those live counters into the stored rows ([`merge`]) and writes the merged
//! counts back when they change state, so the history survives the Redis TTL (7 days).

use mail_protocol::{Progress, SendId};
use serde::Serialize;

/// Where a bulk send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing done yet.
    Pending,
    /// Some done, some not.
    Processing,
    /// All done, none failed (some may have been cancelled).
    Completed,
    /// All done, some failed (or the enqueue itself failed).
    Failed,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// Reads the stored spelling (anything unknown reads as pending).
    pub fn parse(s: &str) -> Status {
        match s {
            "processing" => Status::Processing,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }

    /// Completed or failed: nothing will change any more (short of a manual retry).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }
}

/// One bulk send, as `/mail_jobs.json` and the history table show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailJob {
    /// `mail_jobs.id`; also the `mail_job_id` in every job's args.
    pub id: i64,
    /// A random batch tag, for finding the send in logs.
    pub job_id: String,
    /// Jobs enqueued.
    pub total_count: i64,
    /// Delivered.
    pub sent_count: i64,
    /// Died (retries exhausted).
    pub failed_count: i64,
    /// Waiting in the retry set.
    pub retrying_count: i64,
    /// Deleted before they ran (a queue or job deleted from the Sidekiq admin).
    pub cancelled_count: i64,
    /// See [`Status`].
    pub status: Status,
    /// Sidekiq queue used.
    pub queue: String,
    /// The "30% errors" button.
    pub simulate_error: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The A/B arm (`default`, `priority`); `None`: outside the experiment.
    pub variant: Option<String>,
    /// When the last job ended (RFC 3339 UTC), once the send is done.
    pub finished_at: Option<String>,
    /// (sent + failed + cancelled) / total, in percent with one decimal (the seed's rounding).
    pub progress_percentage: f64,
    /// Where the worker counts this send in Redis.
    #[serde(skip)]
    pub send_id: SendId,
}

/// The jobs of one send as the worker counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Jobs enqueued.
    pub total: i64,
    /// Delivered.
    pub sent: i64,
    /// Died.
    pub failed: i64,
    /// Deleted before they ran.
    pub cancelled: i64,
    /// Waiting in the retry set.
    pub retrying: i64,
}

impl Counts {
    /// Jobs that have ended one way or another.
    pub fn ended(&self) -> i64 {
        self.sent + self.failed + self.cancelled
    }
}

/// The status the counters imply: done when sent + failed + cancelled reaches the total.
pub fn status_of(c: Counts) -> Status {
    if c.ended() >= c.total {
        if c.failed == 0 {
            Status::Completed
        } else {
            Status::Failed
        }
    } else if c.ended() + c.retrying == 0 {
        Status::Pending
    } else {
        Status::Processing
    }
}

/// The text key of a send's status label. A send that ended with failures but delivered
/// most of its mails reads "completed with failures" (a 1,000-mail send with errors loses
/// about ten: calling it "Failed" misleads); its stored status stays `failed`. A send that
/// completed without delivering anything had every job cancelled.
pub fn status_label(status: Status, sent: i64, total: i64) -> &'static str {
    match status {
        Status::Pending => "status_pending",
        Status::Processing => "status_processing",
        Status::Completed if sent == 0 && total > 0 => "status_cancelled",
        Status::Completed => "status_completed",
        Status::Failed if sent * 2 > total => "status_completed_with_failures",
        Status::Failed => "status_failed",
    }
}

/// Ended jobs / total in percent, one decimal, at most 100.
pub fn percentage(c: Counts) -> f64 {
    if c.total <= 0 {
        return 0.0;
    }
    let p = (c.ended() as f64 / c.total as f64 * 1000.0).round() / 10.0;
    p.min(100.0)
}

/// Combines a stored row with the worker's live counters and the time they last moved
/// (epoch ms).
///
/// Redis wins whenever it has anything (it is exact and the only writer); when it has
/// nothing — not started, or its hash expired — the stored copy stands, which also keeps an
/// enqueue failure (stored as failed with zero counts) failed. A send that is done takes
/// its finish time from the last change.
pub fn merge(stored: &MailJob, live: Option<Progress>, last_change_ms: Option<i64>) -> MailJob {
    let Some(p) = live.filter(|p| p.ended() + p.retrying > 0) else {
        return stored.clone();
    };
    let mut job = stored.clone();
    job.sent_count = p.sent;
    job.failed_count = p.failed;
    job.retrying_count = p.retrying;
    job.cancelled_count = p.cancelled;
    let counts = job.counts();
    job.status = status_of(counts);
    job.progress_percentage = percentage(counts);
    job.finished_at = if job.status.is_final() {
        last_change_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .or_else(|| stored.finished_at.clone())
    } else {
        None
    };
    job
}

impl MailJob {
    /// Its counters.
    pub fn counts(&self) -> Counts {
        Counts {
            total: self.total_count,
            sent: self.sent_count,
            failed: self.failed_count,
            cancelled: self.cancelled_count,
            retrying: self.retrying_count,
        }
    }
}

/// Seconds from the send's creation to its last job's end, once it is done.
pub fn seconds_to_complete(job: &MailJob) -> Option<f64> {
    let finished = chrono::DateTime::parse_from_rfc3339(job.finished_at.as_deref()?).ok()?;
    let created = chrono::DateTime::parse_from_rfc3339(&job.created_at).ok()?;
    let ms = (finished - created).num_milliseconds();
    // Clocks of two machines (the web's, Redis's) may disagree by a little.
    Some(ms.max(0) as f64 / 1000.0)
}

/// Whether a merged row should be written back: its status changed, or it is final and its
/// counts differ (a dead job retried from the Web UI later succeeded). Counts that merely
/// advance while processing are not written on every poll.
pub fn needs_saving(stored: &MailJob, merged: &MailJob) -> bool {
    stored.status != merged.status
        || (merged.status.is_final()
            && (
                stored.sent_count,
                stored.failed_count,
                stored.retrying_count,
                stored.cancelled_count,
            ) != (
                merged.sent_count,
                merged.failed_count,
                merged.retrying_count,
                merged.cancelled_count,
            ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(total: i64) -> MailJob {
        MailJob {
            id: 1,
            job_id: "t".into(),
            total_count: total,
            sent_count: 0,
            failed_count: 0,
            retrying_count: 0,
            cancelled_count: 0,
            status: Status::Pending,
            queue: "default".into(),
            simulate_error: false,
            created_at: "2026-11-24T04:50:00.000Z".into(),
            variant: None,
            finished_at: None,
            progress_percentage: 0.0,
            send_id: SendId::new("0f", 1),
        }
    }

    fn p(sent: i64, failed: i64, retrying: i64) -> Option<Progress> {
        Some(Progress {
            sent,
            failed,
            retrying,
            cancelled: 0,
        })
    }

    #[test]
    fn statuses_follow_the_counters() {
        let j = job(10);
        assert_eq!(merge(&j, None, None).status, Status::Pending);
        assert_eq!(merge(&j, p(0, 0, 0), None).status, Status::Pending);
        assert_eq!(merge(&j, p(0, 0, 1), None).status, Status::Processing);
        assert_eq!(merge(&j, p(3, 0, 0), None).status, Status::Processing);
        let done = merge(&j, p(10, 0, 0), None);
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.progress_percentage, 100.0);
        let failed = merge(&j, p(7, 3, 0), None);
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.failed_count, 3);
        assert_eq!(merge(&job(3), p(1, 0, 0), None).progress_percentage, 33.3);
    }

    #[test]
    fn mostly_delivered_sends_complete_with_failures() {
        assert_eq!(
            status_label(Status::Failed, 990, 1000),
            "status_completed_with_failures"
        );
        assert_eq!(status_label(Status::Failed, 500, 1000), "status_failed");
        // An enqueue that failed outright: nothing delivered.
        assert_eq!(status_label(Status::Failed, 0, 1000), "status_failed");
        assert_eq!(
            status_label(Status::Completed, 1000, 1000),
            "status_completed"
        );
        assert_eq!(status_label(Status::Pending, 0, 1000), "status_pending");
    }

    #[test]
    fn cancelled_jobs_end_a_send() {
        let cancelled = |sent, failed, cancelled| {
            Some(Progress {
                sent,
                failed,
                retrying: 0,
                cancelled,
            })
        };
        let j = job(10);
        // Only cancellations so far (a queue deleted before the worker ran anything).
        let all = merge(&j, cancelled(0, 0, 10), Some(1_795_495_802_500));
        assert_eq!((all.status, all.cancelled_count), (Status::Completed, 10));
        assert_eq!(all.progress_percentage, 100.0);
        assert!(all.finished_at.is_some() && needs_saving(&j, &all));
        assert_eq!(
            status_label(all.status, all.sent_count, all.total_count),
            "status_cancelled"
        );
        let part = merge(&j, cancelled(6, 0, 4), None);
        assert_eq!(part.status, Status::Completed);
        assert_eq!(status_label(part.status, 6, 10), "status_completed");
        assert_eq!(merge(&j, cancelled(5, 1, 4), None).status, Status::Failed);
        let open = merge(&j, cancelled(2, 0, 3), None);
        assert_eq!(
            (open.status, open.progress_percentage),
            (Status::Processing, 50.0)
        );
        // A later correction of the cancelled count alone is saved.
        let fewer = merge(&all, cancelled(1, 0, 9), None);
        assert!(needs_saving(&all, &fewer));
    }

    #[test]
    fn stored_copy_stands_when_redis_forgot() {
        let mut stored = job(10);
        stored.sent_count = 8;
        stored.failed_count = 2;
        stored.status = Status::Failed;
        assert_eq!(merge(&stored, p(0, 0, 0), None), stored);
        let mut enqueue_failed = job(10);
        enqueue_failed.status = Status::Failed;
        assert_eq!(merge(&enqueue_failed, None, None).status, Status::Failed);
    }

    #[test]
    fn a_finished_send_knows_when_it_ended() {
        let j = job(10);
        // 2026-11-24T04:50:02.500Z
        let end = 1_795_495_802_500;
        let running = merge(&j, p(5, 0, 0), Some(end - 1_000));
        assert_eq!(running.finished_at, None);
        assert_eq!(seconds_to_complete(&running), None);
        let done = merge(&j, p(9, 1, 0), Some(end));
        assert_eq!(
            done.finished_at.as_deref(),
            Some("2026-11-24T04:50:02.500Z")
        );
        assert_eq!(seconds_to_complete(&done), Some(2.5));
        assert!(needs_saving(&j, &done));
        // Redis forgot: the stored copy keeps its finish time.
        assert_eq!(merge(&done, None, None).finished_at, done.finished_at);
    }

    #[test]
    fn saving_happens_on_status_changes_and_final_corrections() {
        let stored = job(10);
        assert!(!needs_saving(&stored, &merge(&stored, p(0, 0, 0), None)));
        let processing = merge(&stored, p(1, 0, 0), None);
        assert!(needs_saving(&stored, &processing));
        assert!(!needs_saving(
            &processing,
            &merge(&processing, p(5, 0, 0), None)
        ));
        let failed = merge(&stored, p(9, 1, 0), None);
        let corrected = merge(&failed, p(10, 0, 0), None);
        assert_eq!(corrected.status, Status::Completed);
        assert!(needs_saving(&failed, &corrected));
    }
}
