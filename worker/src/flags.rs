//! The `mail_delivery_paused` flag (Unleash): the incident switch Sidekiq Pro users know as
//! queue pausing. On, every worker stops fetching: jobs stay in their queues (nothing is
//! lost), running jobs finish, the Busy page shows the process quiet and `/health/ready`
//! says `paused`. Off, fetching resumes. Unreachable or unconfigured Unleash: not paused
//! (a flag's safe value is what a worker does with no Unleash at all).
//!
//! [`Pause`] is the switch the fetch loop, the heartbeat and the health endpoint read;
//! [`PauseWatcher`] sets it from the flag, evaluated from the SDK's memory once a second.

use mail_protocol::flags::MAIL_DELIVERY_PAUSED;
use service_runtime::flags::Unleash;
use std::time::Duration;
use tokio::sync::watch;

/// How often the flag is read from the SDK's memory (it fetches every refresh interval).
const EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// How often the fetch loop reports itself alive while paused (liveness watches it).
const HOLD_TICK: Duration = Duration::from_secs(1);

/// Whether delivery is paused; cheap to clone, never paused by default.
#[derive(Debug, Clone)]
pub struct Pause {
    paused: watch::Sender<bool>,
}

impl Default for Pause {
    fn default() -> Self {
        Pause {
            paused: watch::channel(false).0,
        }
    }
}

impl Pause {
    /// Whether fetching is paused now.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Pauses or resumes; returns whether that changed anything.
    pub fn set(&self, paused: bool) -> bool {
        self.paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused)
    }

    /// Waits while paused, calling `turned` every second (the loop is alive, only holding);
    /// returns `true` if `quieted` resolved first (the caller stops), `false` once resumed.
    pub async fn hold<F: std::future::Future<Output = ()>>(
        &self,
        quieted: F,
        turned: impl Fn(),
    ) -> bool {
        let mut rx = self.paused.subscribe();
        tokio::pin!(quieted);
        while *rx.borrow_and_update() {
            tokio::select! {
                () = &mut quieted => return true,
                _ = rx.changed() => {}
                () = tokio::time::sleep(HOLD_TICK) => turned(),
            }
        }
        false
    }
}

/// Reads `mail_delivery_paused` into a [`Pause`] until aborted.
pub struct PauseWatcher {
    /// The Unleash client (polling in the background).
    pub unleash: Unleash,
    /// The switch to set.
    pub pause: Pause,
}

impl PauseWatcher {
    /// Evaluates the flag once a second; logs every change.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(EVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // Unreachable Unleash reads as "not paused", like an unknown flag.
            let paused = self
                .unleash
                .enabled(MAIL_DELIVERY_PAUSED, None, false)
                .unwrap_or(false);
            if self.pause.set(paused) {
                if paused {
                    tracing::warn!(
                        flag = MAIL_DELIVERY_PAUSED,
                        "delivery paused: no new jobs are fetched until the flag is off"
                    );
                } else {
                    tracing::info!(flag = MAIL_DELIVERY_PAUSED, source = ?self.unleash.source(), "delivery resumed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn hold_waits_while_paused_and_reports_turns() {
        let pause = Pause::default();
        assert!(
            !pause.hold(std::future::pending(), || {}).await,
            "not paused: no wait"
        );
        assert!(pause.set(true));
        assert!(!pause.set(true), "no change");
        let turns = Arc::new(AtomicUsize::new(0));
        let holding = {
            let (pause, turns) = (pause.clone(), turns.clone());
            tokio::spawn(async move {
                pause
                    .hold(std::future::pending(), || {
                        turns.fetch_add(1, Ordering::Relaxed);
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!holding.is_finished());
        assert_eq!(turns.load(Ordering::Relaxed), 3);
        pause.set(false);
        assert!(!holding.await.unwrap(), "resumed");
        pause.set(true);
        assert!(pause.hold(async {}, || {}).await, "quiet ends the hold");
    }
}
