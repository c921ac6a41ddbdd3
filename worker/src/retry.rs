//! What happens to a failed job, exactly as Sidekiq's `job_retry.rb` decides it.
//!
//! Given the payload as fetched and the error, [`plan_failure`] returns the new payload and
//! where it goes, as a [`Decision`]: the `retry` set (at now + backoff), the `dead` set, or
//! nowhere (discarded).

use crate::decision::Decision;
use crate::jobs::Failure;
use sidekiq_wire::Job;
use sidekiq_wire::Timestamp;
use sidekiq_wire::job::BacktraceOption;

/// Longest `error_message` stored (Sidekiq truncates at 10,000 characters).
const MAX_ERROR_MESSAGE: usize = 10_000;

/// Sidekiq 8's backoff in seconds: `count⁴ + 15 + rand(10·(count+1))`.
/// `jitter` is a uniform sample in `[0, 1)`.
pub fn backoff_secs(count: i64, jitter: f64) -> f64 {
    let c = count.max(0) as f64;
    let spread = 10.0 * (c + 1.0);
    c.powi(4) + 15.0 + (jitter.clamp(0.0, 0.999_999) * spread).floor()
}

/// Decides where a failed job goes and writes the failure into its payload
/// (`queue`, `error_class`, `error_message`, `failed_at`/`retried_at`, `retry_count`,
/// `error_backtrace`). `fetched_queue` is the queue it was taken from.
pub fn plan_failure(
    mut job: Job,
    fetched_queue: &str,
    failure: &Failure,
    now: Timestamp,
    jitter: f64,
) -> Decision {
    let Some(max) = job.retry().max_retries() else {
        return Decision::Discarded;
    };
    // The payload is rewritten anyway: its timestamps in the one form every Web UI reads
    // (the `sidekiq` crate writes integer seconds, which 8.x would show as 1970).
    job.normalize_timestamps();
    let queue = job.retry_queue().unwrap_or(fetched_queue).to_owned();
    job.set_queue(queue);
    job.set_error(&failure.class, &truncate(&failure.message));
    let count = match job.retry_count() {
        Some(previous) => {
            job.set_retried_at(now);
            // A hand-written count near i64::MAX must end in the dead set, not wrap around
            // to a negative count that retries forever.
            previous.saturating_add(1)
        }
        None => {
            job.set_failed_at(now);
            0
        }
    };
    job.set_retry_count(count);
    // The retry and dead pages need `failed_at` even when a job arrives with a retry_count
    // but no failed_at (hand-written or foreign payloads); Ruby would 500 on those.
    if job.failed_at().is_none() {
        job.set_failed_at(now);
    }
    let keep = match job.backtrace_option() {
        BacktraceOption::None => 0,
        BacktraceOption::All => failure.backtrace.len(),
        BacktraceOption::Lines(n) => n.min(failure.backtrace.len()),
    };
    if job.backtrace_option() != BacktraceOption::None {
        job.set_error_backtrace(&failure.backtrace[..keep]);
    }
    job.clear_at();
    if failure.permanent || count >= max {
        if job.dead_set_enabled() {
            Decision::Dead {
                payload: job.to_json_string(),
            }
        } else {
            Decision::Discarded
        }
    } else {
        Decision::Retry {
            at: now.plus_secs(backoff_secs(count, jitter)),
            payload: job.to_json_string(),
        }
    }
}

fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_ERROR_MESSAGE) {
        Some((i, _)) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use sidekiq_wire::Retry;

    fn failure() -> Failure {
        Failure {
            class: "SmtpTransientError".into(),
            message: "451 try later".into(),
            backtrace: vec!["a".into(), "b".into()],
            permanent: false,
        }
    }

    fn job(retry: Retry) -> Job {
        Job::new("MailSenderJob", vec![json!({"to": "a@example.test"})]).with_retry(retry)
    }

    fn fields(payload: &str) -> Value {
        serde_json::from_str(payload).unwrap()
    }

    #[test]
    fn backoff_follows_sidekiq_8() {
        // count 0: 15 + 0..=9; count 1: 16 + 0..=19; count 2: 31 + 0..=29; count 3: 96 + 0..=39
        for (count, low, high) in [
            (0, 15.0, 24.0),
            (1, 16.0, 35.0),
            (2, 31.0, 60.0),
            (3, 96.0, 135.0),
            (25, 390640.0, 390899.0),
        ] {
            assert_eq!(backoff_secs(count, 0.0), low);
            assert_eq!(backoff_secs(count, 0.9999999), high);
        }
    }

    #[test]
    fn retry_3_means_three_retries_then_dead() {
        let now = Timestamp::from_secs(1_800_000_000.0);
        let mut payload = job(Retry::Max(3)).to_json_string();
        let mut scores = vec![];
        for attempt in 0..4 {
            let j = Job::parse(&payload).unwrap();
            match plan_failure(j, "default", &failure(), now, 0.5) {
                Decision::Retry { at, payload: p } => {
                    assert!(attempt < 3, "attempt {attempt} must not retry");
                    let f = fields(&p);
                    assert_eq!(f["retry_count"], attempt);
                    assert_eq!(f["error_class"], "SmtpTransientError");
                    assert_eq!(f["error_message"], "451 try later");
                    assert!(f["failed_at"].is_f64());
                    assert_eq!(f.get("retried_at").is_some(), attempt > 0);
                    assert!(
                        f.get("error_backtrace").is_none(),
                        "no backtrace unless asked"
                    );
                    scores.push(at.as_secs() - now.as_secs());
                    payload = p;
                }
                Decision::Dead { payload: p } => {
                    assert_eq!(attempt, 3);
                    assert_eq!(fields(&p)["retry_count"], 3);
                }
                other => panic!("retry: 3 never discards: {other:?}"),
            }
        }
        assert_eq!(scores, vec![15.0 + 5.0, 16.0 + 10.0, 31.0 + 15.0]);
    }

    #[test]
    fn retry_false_discards_and_zero_goes_dead_and_dead_false_discards() {
        let now = Timestamp::now();
        assert_eq!(
            plan_failure(job(Retry::Disabled), "default", &failure(), now, 0.0),
            Decision::Discarded
        );
        assert!(matches!(
            plan_failure(job(Retry::Max(0)), "default", &failure(), now, 0.0),
            Decision::Dead { .. }
        ));
        let no_dead = job(Retry::Max(0)).with("dead", json!(false)).unwrap();
        assert_eq!(
            plan_failure(no_dead, "default", &failure(), now, 0.0),
            Decision::Discarded
        );
    }

    #[test]
    fn permanent_failures_skip_the_retry_set() {
        let mut f = failure();
        f.permanent = true;
        assert!(matches!(
            plan_failure(job(Retry::Max(3)), "default", &f, Timestamp::now(), 0.0),
            Decision::Dead { .. }
        ));
    }

    #[test]
    fn retry_queue_and_backtrace_and_unknown_keys() {
        let j = job(Retry::Default)
            .with("retry_queue", json!("low"))
            .and_then(|j| j.with("backtrace", json!(1)))
            .and_then(|j| j.with("bid", json!("B1")))
            .unwrap();
        let Decision::Retry { payload, .. } =
            plan_failure(j, "default", &failure(), Timestamp::now(), 0.0)
        else {
            panic!()
        };
        let f = fields(&payload);
        assert_eq!(f["queue"], "low");
        assert_eq!(f["bid"], "B1");
        let bt = sidekiq_wire::backtrace::decode(f["error_backtrace"].as_str().unwrap()).unwrap();
        assert_eq!(bt, vec!["a".to_string()]);
    }

    #[test]
    fn manual_retry_count_of_minus_one_continues() {
        let j = job(Retry::Max(3))
            .with("retry_count", json!(-1))
            .and_then(|j| j.with("failed_at", json!(1.5)))
            .unwrap();
        let Decision::Retry { payload, .. } =
            plan_failure(j, "default", &failure(), Timestamp::now(), 0.0)
        else {
            panic!()
        };
        assert_eq!(fields(&payload)["retry_count"], 0);
        assert_eq!(
            fields(&payload)["failed_at"],
            json!(1.5),
            "first failure time is kept"
        );
    }

    #[test]
    fn a_retry_count_at_the_top_of_i64_saturates_and_is_exhausted() {
        let j = job(Retry::Max(3))
            .with("retry_count", json!(i64::MAX))
            .and_then(|j| j.with("failed_at", json!(1.5)))
            .unwrap();
        let Decision::Dead { payload } =
            plan_failure(j, "default", &failure(), Timestamp::now(), 0.0)
        else {
            panic!("an exhausted count goes to the dead set")
        };
        assert_eq!(fields(&payload)["retry_count"], json!(i64::MAX));
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let mut f = failure();
        f.message = "あ".repeat(20_000);
        let Decision::Retry { payload, .. } =
            plan_failure(job(Retry::Max(3)), "default", &f, Timestamp::now(), 0.0)
        else {
            panic!()
        };
        assert_eq!(
            fields(&payload)["error_message"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            10_000
        );
    }
}
