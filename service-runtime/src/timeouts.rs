//! Timeouts that tell a slow operation from a paused process.
//!
//! When a process is frozen (a VM pause, SIGSTOP, a stop-the-world stall) every timer it
//! has expires at once when it wakes up, although the operations they guard may have
//! finished meanwhile on the other side (an SMTP server accepted the mail; the answer is
//! waiting in the socket). Failing them would make the work run twice. A timer that fires
//! much later than it was due shows the pause, so the operation gets one more period to
//! finish before it counts as timed out.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A timer that fires later than this after its deadline was not running: the process was.
const PAUSE_EVIDENCE: Duration = Duration::from_millis(500);

/// The operation did not finish in time (nor within the extra period after a pause).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct TimedOut;

/// Runs `fut` for at most `limit`; if the limit passed while this process was paused, for
/// up to `limit` more.
///
/// # Errors
/// [`TimedOut`].
pub async fn timeout_tolerating_pauses<F: Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, TimedOut> {
    let started = Instant::now();
    tokio::pin!(fut);
    match tokio::time::timeout(limit, &mut fut).await {
        Ok(v) => Ok(v),
        Err(_) if started.elapsed() > limit + PAUSE_EVIDENCE => {
            tokio::time::timeout(limit, &mut fut)
                .await
                .map_err(|_| TimedOut)
        }
        Err(_) => Err(TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_operation_times_out_on_time() {
        let r = timeout_tolerating_pauses(
            Duration::from_secs(1),
            tokio::time::sleep(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(r, Err(TimedOut));
    }

    #[tokio::test]
    async fn a_paused_process_lets_the_operation_finish() {
        // The operation needs 150 ms once the process runs again; the process "was paused"
        // (this thread blocked) well past the 100 ms limit.
        let op = async {
            std::thread::sleep(Duration::from_millis(900));
            tokio::time::sleep(Duration::from_millis(50)).await;
            "done"
        };
        let r = timeout_tolerating_pauses(Duration::from_millis(100), op).await;
        assert_eq!(r, Ok("done"));
    }
}
