//! The A/B results of the `send_strategy` experiment: per arm (`default`, `priority`, and the
//! sends outside the experiment), how many sends and mails, how long a send took from the
//! button to its last mail, the mails per second that makes, and the failure rate. Under load
//! (the `default` queue backed up) the `priority` arm should finish sooner: that is the
//! lesson the table shows.

use crate::domain::mail_job::{MailJob, seconds_to_complete};
use mail_protocol::flags::{DEFAULT_VARIANT, PRIORITY_VARIANT};
use serde::Serialize;

/// One arm's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmResult {
    /// `default`, `priority`, or `None` for sends outside the experiment.
    pub variant: Option<String>,
    /// Sends recorded in this arm.
    pub sends: usize,
    /// Mails those sends enqueued.
    pub mails: i64,
    /// Sends whose every job has ended.
    pub finished: usize,
    /// Mean seconds from the button to the last mail, over the finished sends.
    pub avg_secs_to_complete: Option<f64>,
    /// Mails done per second of those sends' time to complete (all finished sends together).
    pub mails_per_sec: Option<f64>,
    /// Failed mails per 100 done (sent or failed), over every send of the arm.
    pub failure_rate: Option<f64>,
}

/// The results of `jobs` (the recent sends), `default` and `priority` always, the sends outside
/// the experiment only if there are any.
pub fn results(jobs: &[MailJob]) -> Vec<ArmResult> {
    let mut arms = vec![
        arm(jobs, Some(DEFAULT_VARIANT)),
        arm(jobs, Some(PRIORITY_VARIANT)),
    ];
    let outside = arm(jobs, None);
    if outside.sends > 0 {
        arms.push(outside);
    }
    arms
}

fn arm(jobs: &[MailJob], variant: Option<&str>) -> ArmResult {
    let mine: Vec<&MailJob> = jobs
        .iter()
        .filter(|j| j.variant.as_deref() == variant)
        .collect();
    let timed: Vec<(f64, i64)> = mine
        .iter()
        .filter_map(|j| Some((seconds_to_complete(j)?, j.sent_count + j.failed_count)))
        .collect();
    let total_secs: f64 = timed.iter().map(|(s, _)| s).sum();
    let timed_mails: i64 = timed.iter().map(|(_, m)| m).sum();
    let done: i64 = mine.iter().map(|j| j.sent_count + j.failed_count).sum();
    let failed: i64 = mine.iter().map(|j| j.failed_count).sum();
    ArmResult {
        variant: variant.map(str::to_owned),
        sends: mine.len(),
        mails: mine.iter().map(|j| j.total_count).sum(),
        finished: timed.len(),
        avg_secs_to_complete: (!timed.is_empty()).then(|| total_secs / timed.len() as f64),
        mails_per_sec: (total_secs > 0.0).then(|| timed_mails as f64 / total_secs),
        failure_rate: (done > 0).then(|| failed as f64 * 100.0 / done as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mail_job::Status;
    use mail_protocol::SendId;

    fn send(
        variant: Option<&str>,
        total: i64,
        sent: i64,
        failed: i64,
        secs: Option<u32>,
    ) -> MailJob {
        MailJob {
            id: 1,
            job_id: "t".into(),
            total_count: total,
            sent_count: sent,
            failed_count: failed,
            retrying_count: 0,
            cancelled_count: 0,
            status: if secs.is_some() {
                Status::Completed
            } else {
                Status::Processing
            },
            queue: "default".into(),
            simulate_error: false,
            created_at: "2026-11-24T04:50:00.000Z".into(),
            variant: variant.map(str::to_owned),
            finished_at: secs.map(|s| format!("2026-11-24T04:50:{s:02}.000Z")),
            progress_percentage: 0.0,
            send_id: SendId::new("0f", 1),
        }
    }

    #[test]
    fn arms_are_compared_on_their_finished_sends() {
        let jobs = [
            send(Some("default"), 1000, 1000, 0, Some(10)),
            send(Some("default"), 1000, 900, 100, Some(30)),
            send(Some("default"), 1000, 10, 0, None),
            send(Some("priority"), 1000, 1000, 0, Some(5)),
        ];
        let r = results(&jobs);
        assert_eq!(r.len(), 2, "no sends outside the experiment: no third row");
        let default = &r[0];
        assert_eq!(default.variant.as_deref(), Some("default"));
        assert_eq!(
            (default.sends, default.mails, default.finished),
            (3, 3000, 2)
        );
        assert_eq!(default.avg_secs_to_complete, Some(20.0));
        assert_eq!(default.mails_per_sec, Some(2000.0 / 40.0));
        assert_eq!(default.failure_rate, Some(100.0 * 100.0 / 2010.0));
        let priority = &r[1];
        assert_eq!(priority.avg_secs_to_complete, Some(5.0));
        assert_eq!(priority.mails_per_sec, Some(200.0));
        assert_eq!(priority.failure_rate, Some(0.0));
    }

    #[test]
    fn empty_arms_have_no_numbers_and_outside_sends_get_their_row() {
        let r = results(&[send(None, 10, 0, 0, None)]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].sends, 0);
        assert_eq!(
            (
                r[0].avg_secs_to_complete,
                r[0].mails_per_sec,
                r[0].failure_rate
            ),
            (None, None, None)
        );
        assert_eq!(r[2].variant, None);
        assert_eq!(r[2].sends, 1);
    }
}
