//! Every Redis key this project adds next to Sidekiq's own, all under `mailworker:`.
//!
//! None of them is in `queues`, so the Sidekiq Web UI never shows them. The web reads the
//! progress keys; everything else is the worker's bookkeeping.

use crate::job::SendId;

/// HASH: in-progress or staging list key ⇒ JSON `{"identity", "queue"}` or
/// `{"identity", "set"}`: every private list a process holds jobs in, so that another
/// process can give them back when the owner's heartbeat has expired.
pub const REGISTRY: &str = "mailworker:inprogress";

/// HASH: jid ⇒ how often it was recovered from a crashed process (kept a day).
pub const RECOVERIES: &str = "mailworker:recoveries";

/// LIST of jobs recovered from crashed processes too often (poison pills), waiting for a
/// live process to move them to the dead set with the reason and count them as failed.
pub const POISONED: &str = "mailworker:poisoned";

/// SET of bulk-send ids ([`SendId`]s) that have jids in state `retrying`.
pub const RETRYING_INDEX: &str = "mailworker:retrying";

/// SET of sends ([`SendId`]s) fully enqueued and not yet over (see [`send`]).
pub const SENDS: &str = "mailworker:sends";

/// STRING lock: the one process that reconciles counters across the cluster this interval.
pub const RECONCILE_LOCK: &str = "mailworker:reconcile-lock";

/// HASH describing one enqueued send: `total` (jobs really enqueued) and `queue`.
pub fn send(send: &SendId) -> String {
    format!("mailworker:send:{send}")
}

/// The in-progress list of `identity` for `queue` (reliable fetch).
pub fn inprogress(identity: &str, queue: &str) -> String {
    format!("mailworker:inprogress:{identity}:{queue}")
}

/// The staging list where the scheduler holds jobs between leaving a sorted set (`retry`,
/// `schedule`) and landing in their queue, so a crash in between loses nothing.
pub fn staging(identity: &str, set: &str) -> String {
    format!("mailworker:staging:{identity}:{set}")
}

/// HASH of one bulk send's counters: `sent`, `failed`, `retrying`.
pub fn progress(send: &SendId) -> String {
    format!("mailworker:progress:{send}")
}

/// HASH of one bulk send's jids in state `retrying` ⇒ the retry-set member each is stored as
/// (or [`crate::progress::REQUEUED`] once a poller moved it back to its queue).
pub fn retrying(send: &SendId) -> String {
    format!("mailworker:retrying:{send}")
}

/// STRING: the delivery state of one jid (`sent`, `retrying`, `dead`).
pub fn delivery(jid: &str) -> String {
    format!("mailworker:jid:{jid}")
}

/// Registry value of an in-progress list.
pub fn registry_entry_for_queue(identity: &str, queue: &str) -> String {
    serde_json::json!({"identity": identity, "queue": queue}).to_string()
}

/// Registry value of a scheduler staging list.
pub fn registry_entry_for_set(identity: &str, set: &str) -> String {
    serde_json::json!({"identity": identity, "set": set}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        // The web and older workers read these; renaming one is a breaking change.
        let send = SendId::for_mail_job(7);
        assert_eq!(progress(&send), "mailworker:progress:7");
        assert_eq!(delivery("abc"), "mailworker:jid:abc");
        assert_eq!(
            inprogress("h:1:ff", "default"),
            "mailworker:inprogress:h:1:ff:default"
        );
        assert_eq!(
            staging("h:1:ff", "retry"),
            "mailworker:staging:h:1:ff:retry"
        );
        assert_eq!(retrying(&send), "mailworker:retrying:7");
        let send = SendId::new("0f1e2d3c4b5a69788796a5b4c3d2e1f0", 7);
        assert_eq!(
            progress(&send),
            "mailworker:progress:0f1e2d3c4b5a69788796a5b4c3d2e1f0:7"
        );
    }
}
