//! What became of one job: the single answer the processor gives. Releasing the lease, the
//! delivery state, the stats, the metrics and the log line all follow from it.

use mail_protocol::DeliveryState;
use sidekiq_wire::Timestamp;

/// The end of one execution of one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The SMTP server accepted the mail.
    Delivered,
    /// The jid had been delivered before (it ran twice); nothing was sent.
    AlreadyDelivered,
    /// A job that sends nothing finished.
    Done,
    /// Failed; stored in the retry set to run again at `at`.
    Retry {
        /// When it runs again.
        at: Timestamp,
        /// The payload with the failure written into it.
        payload: String,
    },
    /// Failed for good (retries exhausted, permanent error, unreadable payload): stored in
    /// the dead set, where the Web UI shows it and can run it again.
    Dead {
        /// The payload with the failure written into it (or the raw bytes of a malformed one).
        payload: String,
    },
    /// Failed with `retry: false` (or exhausted with `dead: false`): dropped, as Ruby does.
    Discarded,
    /// Not run (the process is stopping): pushed back untouched to the end of its queue that
    /// is fetched next.
    Requeue,
}

impl Decision {
    /// The delivery state a `MailSenderJob` reaches by this decision (none for a requeue).
    pub fn delivery_state(&self) -> Option<DeliveryState> {
        match self {
            Decision::Delivered | Decision::AlreadyDelivered | Decision::Done => {
                Some(DeliveryState::Sent)
            }
            Decision::Retry { .. } => Some(DeliveryState::Retrying),
            Decision::Dead { .. } | Decision::Discarded => Some(DeliveryState::Dead),
            Decision::Requeue => None,
        }
    }

    /// Whether the execution failed (Sidekiq's `stat:failed`).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Decision::Retry { .. } | Decision::Dead { .. } | Decision::Discarded
        )
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Delivered => "delivered",
            Decision::AlreadyDelivered => "already_delivered",
            Decision::Done => "done",
            Decision::Retry { .. } => "retry",
            Decision::Dead { .. } => "dead",
            Decision::Discarded => "discarded",
            Decision::Requeue => "requeued",
        }
    }
}
