//! The lesson guide (the seed's §9.1 Sidekiq scenario): its steps, when each counts as done,
//! and how a person's clicks in the Sidekiq admin are recognised in Redis.
//!
//! Steps 1–3 (send 1,000, watch the queue drain, send with errors) are read from the sends
//! themselves. Steps 4–7 are things that happen in Redis and then pass: a job sits in the
//! retry set for a while, a person presses Retry Now, a job dies, a person revives it. A
//! watcher looks once a second and records each the first time it sees it (a
//! [`Milestone`]), so the tick stays when the evidence is gone.
//!
//! How a click is recognised without seeing the click: the worker's poller only takes a
//! retry whose time has come, so a job that leaves the retry set **more than a few seconds
//! before its time** was moved by a person (Retry Now, Kill or Delete). It was Retry Now if
//! it then runs: it is delivered (its jid turns `sent`) or fails again (it comes back to the
//! retry set with a new time). Kill and Delete do neither. Likewise nothing takes a job out
//! of the dead set except a person: one that leaves it and then runs (delivered, or back in
//! the retry or dead set) was revived. [`SetWatch`] is that rule over successive snapshots.

use crate::domain::mail_job::{Counts, Status, status_of};
use serde::Serialize;
use std::collections::HashMap;

/// The steps, in the seed's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Press "Send 1,000".
    Send,
    /// Watch the queue fill and drain in the admin.
    Queues,
    /// Send 1,000 with simulated errors.
    Errors,
    /// See failed jobs waiting on the Retries page.
    Retries,
    /// Press Retry Now on one.
    RetryNow,
    /// See jobs that used up their retries on the Dead page.
    Dead,
    /// Revive one from the Dead page.
    Revive,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 7] = [
        Step::Send,
        Step::Queues,
        Step::Errors,
        Step::Retries,
        Step::RetryNow,
        Step::Dead,
        Step::Revive,
    ];

    /// The name used in templates (`lesson_<key>_title`) and in the page's `data-step`.
    pub fn key(self) -> &'static str {
        match self {
            Step::Send => "send",
            Step::Queues => "queues",
            Step::Errors => "errors",
            Step::Retries => "retries",
            Step::RetryNow => "retry_now",
            Step::Dead => "dead",
            Step::Revive => "revive",
        }
    }
}

/// What the watcher records the first time it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Milestone {
    /// A job of an error send waited in the retry set.
    Retries,
    /// A retry left the retry set early and ran.
    RetryNow,
    /// A job of an error send was seen in the dead set.
    Dead,
    /// A dead job left the dead set and ran.
    Revive,
}

impl Milestone {
    /// All of them.
    pub const ALL: [Milestone; 4] = [
        Milestone::Retries,
        Milestone::RetryNow,
        Milestone::Dead,
        Milestone::Revive,
    ];

    /// The field it is stored under.
    pub fn field(self) -> &'static str {
        match self {
            Milestone::Retries => "retries",
            Milestone::RetryNow => "retry_now",
            Milestone::Dead => "dead",
            Milestone::Revive => "revive",
        }
    }
}

/// The lesson's record: when it (re)started and when each milestone was first seen, epoch
/// seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// When "start over" was pressed; `None`: every send counts.
    pub started_at: Option<f64>,
    /// First sightings.
    pub seen: HashMap<&'static str, f64>,
}

impl Record {
    /// When `m` was first seen.
    pub fn seen(&self, m: Milestone) -> Option<f64> {
        self.seen.get(m.field()).copied()
    }
}

/// A bulk send as the lesson looks at it: stored row merged with the worker's live counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonSend {
    /// `mail_jobs.id`.
    pub id: i64,
    /// Jobs enqueued.
    pub total: i64,
    /// Delivered.
    pub sent: i64,
    /// Dead.
    pub failed: i64,
    /// Waiting in the retry set.
    pub retrying: i64,
    /// What the counters imply.
    pub status: Status,
    /// The "30% errors" button.
    pub simulate_error: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Epoch seconds of `created_at`.
    pub created_secs: f64,
}

impl LessonSend {
    /// A stored send with the live counters, when Redis has them (the worker's counters are
    /// exact; the stored ones are the last copy the web took).
    pub fn with_live(mut self, live: Option<mail_protocol::Progress>) -> Self {
        if let Some(p) = live.filter(|p| p.ended() + p.retrying > 0) {
            self.sent = p.sent;
            self.failed = p.failed;
            self.retrying = p.retrying;
            self.status = status_of(Counts {
                total: self.total,
                sent: p.sent,
                failed: p.failed,
                cancelled: p.cancelled,
                retrying: p.retrying,
            });
        }
        self
    }

    /// Every job has ended (delivered or dead).
    pub fn finished(&self) -> bool {
        self.status.is_final()
    }
}

/// Everything the steps are judged on.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The latest send without errors of at least the lesson's size, since the start.
    pub plain: Option<LessonSend>,
    /// The latest send with simulated errors, since the start.
    pub errors: Option<LessonSend>,
    /// What the watcher has recorded.
    pub record: Record,
}

/// One step's state on the page.
#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    /// Which.
    pub step: Step,
    /// `Step::key`.
    pub key: &'static str,
    /// 1-based.
    pub number: usize,
    /// Ticked.
    pub done: bool,
    /// The first step not done yet: the one to do now.
    pub current: bool,
}

/// Whether `step` is done: from the sends for steps 1–3, from the record for steps 4–7
/// (Retries also from the send's counter, before the watcher's next look).
pub fn is_done(step: Step, o: &Observation) -> bool {
    let seen = |m| o.record.seen(m).is_some();
    match step {
        Step::Send => o.plain.is_some(),
        Step::Queues => o.plain.as_ref().is_some_and(LessonSend::finished),
        Step::Errors => o.errors.is_some(),
        Step::Retries => {
            seen(Milestone::Retries) || o.errors.as_ref().is_some_and(|s| s.retrying > 0)
        }
        Step::RetryNow => seen(Milestone::RetryNow),
        // Not the send's `failed` counter: the worker also counts a job as failed that it
        // cannot find after a Retry Now that failed again (it is in the retry set then).
        Step::Dead => seen(Milestone::Dead),
        Step::Revive => seen(Milestone::Revive),
    }
}

/// Every step with its state; the first one not done is current.
pub fn steps(o: &Observation) -> Vec<StepState> {
    let mut current_taken = false;
    Step::ALL
        .iter()
        .enumerate()
        .map(|(i, &step)| {
            let done = is_done(step, o);
            let current = !done && !current_taken;
            current_taken |= current;
            StepState {
                step,
                key: step.key(),
                number: i + 1,
                done,
                current,
            }
        })
        .collect()
}

/// The text to type into the admin's filter box (Sidekiq 8.1 also takes it as `?substr=`) to
/// see only one send's jobs: the args are written `{"to":…,"mail_job_id":7,"instance":…}`,
/// so `"mail_job_id":7,` matches send 7 and not 70.
pub fn admin_filter(mail_job_id: i64) -> String {
    format!("\"mail_job_id\":{mail_job_id},")
}

/// How far before its time a job must leave the retry set to count as moved by a person:
/// room for the web's and the worker's clocks to disagree a little.
pub const EARLY_MARGIN_SECS: f64 = 5.0;
/// How long a job that left a set is followed to see whether it runs.
pub const FOLLOW_SECS: f64 = 120.0;

/// Which sorted set a [`SetWatch`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// `retry`, soonest first: jobs leave it by themselves when due.
    Retry,
    /// `dead`, newest first: nothing leaves it by itself.
    Dead,
}

/// One look at a sorted set: the first members in its page order (a bounded window), jid ⇒
/// score, and whether the window was cut (the set is larger).
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// jid ⇒ score.
    pub jobs: HashMap<String, f64>,
    /// The set holds more than the window.
    pub truncated: bool,
}

impl Window {
    /// Whether a member with `score` would be inside this window if it were in the set.
    fn covers(&self, score: f64, watched: Watched) -> bool {
        if !self.truncated {
            return true;
        }
        let scores = self.jobs.values().copied();
        match watched {
            Watched::Retry => scores.fold(f64::NEG_INFINITY, f64::max) >= score,
            Watched::Dead => scores.fold(f64::INFINITY, f64::min) <= score,
        }
    }
}

/// What became of the jids a [`SetWatch`] is following, looked up in Redis between looks.
#[derive(Debug, Clone, Default)]
pub struct Fates {
    /// Jids whose delivery state is `sent`.
    pub delivered: Vec<String>,
}

/// Follows one sorted set across looks and tells when a job left it by a person's hand and
/// then ran (see the module docs).
#[derive(Debug, Clone)]
pub struct SetWatch {
    watched: Watched,
    last: Option<Window>,
    /// jid ⇒ until when it is followed.
    following: HashMap<String, f64>,
}

impl SetWatch {
    /// Nothing seen yet: the first look only sets the baseline.
    pub fn new(watched: Watched) -> Self {
        SetWatch {
            watched,
            last: None,
            following: HashMap::new(),
        }
    }

    /// The jids whose fate [`SetWatch::look`] needs next (their delivery state).
    pub fn followed(&self) -> Vec<String> {
        self.following.keys().cloned().collect()
    }

    /// Takes the next look at the watched set (`window`), the other set's window
    /// (`elsewhere`: a revived job may fail into the retry set, a retried one may die) and
    /// the fates of followed jids, at `now`. Returns whether a person's Retry Now (on the
    /// retry set) or revive (on the dead set) has been seen.
    pub fn look(&mut self, window: Window, elsewhere: &Window, fates: &Fates, now: f64) -> bool {
        let mut seen = false;
        if let Some(last) = &self.last {
            for (jid, &before) in &last.jobs {
                match window.jobs.get(jid) {
                    Some(&score) if score == before => {}
                    // Left and came back with a new time: it ran and failed again.
                    Some(_) => seen |= self.moved_by_hand(before, now),
                    None => {
                        if window.covers(before, self.watched) && self.moved_by_hand(before, now) {
                            self.following.insert(jid.clone(), now + FOLLOW_SECS);
                        }
                    }
                }
            }
        }
        for jid in &fates.delivered {
            seen |= self.following.remove(jid).is_some();
        }
        // A retried job that fails again comes back to the retry set (Retry Now lowers its
        // retry count, so it cannot die); only a revived one may turn up in the other set.
        // A killed retry turns up in the dead set, which must not count.
        let other = match self.watched {
            Watched::Retry => None,
            Watched::Dead => Some(elsewhere),
        };
        let ran_again: Vec<String> = self
            .following
            .keys()
            .filter(|jid| {
                window.jobs.contains_key(*jid) || other.is_some_and(|o| o.jobs.contains_key(*jid))
            })
            .cloned()
            .collect();
        for jid in ran_again {
            // Back in a set (the job was followed because it had left): it ran.
            self.following.remove(&jid);
            seen = true;
        }
        self.following.retain(|_, until| *until > now);
        self.last = Some(window);
        seen
    }

    /// Whether a member with score `before` can only have left by a person's hand at `now`.
    fn moved_by_hand(&self, before: f64, now: f64) -> bool {
        match self.watched {
            Watched::Retry => before > now + EARLY_MARGIN_SECS,
            Watched::Dead => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(total: i64, sent: i64, failed: i64, retrying: i64, errors: bool) -> LessonSend {
        LessonSend {
            id: 1,
            total,
            sent,
            failed,
            retrying,
            status: status_of(Counts {
                total,
                sent,
                failed,
                cancelled: 0,
                retrying,
            }),
            simulate_error: errors,
            created_at: "2026-11-24T04:50:00.000Z".into(),
            created_secs: 0.0,
        }
    }

    fn done(o: &Observation) -> Vec<&'static str> {
        steps(o)
            .into_iter()
            .filter(|s| s.done)
            .map(|s| s.key)
            .collect()
    }

    #[test]
    fn steps_tick_off_from_the_sends_and_the_record() {
        let mut o = Observation::default();
        let s = steps(&o);
        assert!(s[0].current && !s[1].current);
        assert!(done(&o).is_empty());

        o.plain = Some(send(1000, 400, 0, 0, false));
        assert_eq!(done(&o), ["send"]);
        assert!(steps(&o)[1].current);
        o.plain = Some(send(1000, 1000, 0, 0, false));
        assert_eq!(done(&o), ["send", "queues"]);

        o.errors = Some(send(1000, 200, 0, 0, true));
        assert_eq!(done(&o), ["send", "queues", "errors"]);
        // Retries shows as soon as the counter does, before the watcher records it.
        o.errors = Some(send(1000, 600, 0, 250, true));
        assert_eq!(done(&o).len(), 4);
        // Dead only once the watcher saw a job of the send in the dead set.
        o.errors = Some(send(1000, 990, 10, 0, true));
        assert_eq!(done(&o), ["send", "queues", "errors"]);
        o.record.seen.insert(Milestone::Dead.field(), 1.0);
        assert_eq!(done(&o), ["send", "queues", "errors", "dead"]);
        assert_eq!(steps(&o).iter().find(|s| s.current).unwrap().key, "retries");
        // Recorded milestones stay when the evidence is gone (a revived job was delivered).
        o.errors = Some(send(1000, 1000, 0, 0, true));
        for m in Milestone::ALL {
            o.record.seen.insert(m.field(), 1.0);
        }
        assert_eq!(done(&o).len(), 7);
        assert!(steps(&o).iter().all(|s| !s.current));
    }

    #[test]
    fn live_counters_win_over_the_stored_copy() {
        let stored = send(1000, 0, 0, 0, true);
        let live = mail_protocol::Progress {
            sent: 700,
            failed: 0,
            retrying: 300,
            cancelled: 0,
        };
        let merged = stored.clone().with_live(Some(live));
        assert_eq!((merged.sent, merged.retrying), (700, 300));
        assert_eq!(merged.status, Status::Processing);
        assert_eq!(stored.clone().with_live(None), stored);
    }

    #[test]
    fn the_admin_filter_names_one_send() {
        let f = admin_filter(7);
        assert_eq!(f, r#""mail_job_id":7,"#);
        let args = r#"{"to":"a@example.test","mail_job_id":7,"instance":"ab"}"#;
        assert!(args.contains(&f));
        assert!(!r#"{"mail_job_id":70,"instance":"ab"}"#.contains(&f));
    }

    fn window(jobs: &[(&str, f64)]) -> Window {
        Window {
            jobs: jobs.iter().map(|(j, s)| (j.to_string(), *s)).collect(),
            truncated: false,
        }
    }

    fn delivered(jids: &[&str]) -> Fates {
        Fates {
            delivered: jids.iter().map(|j| j.to_string()).collect(),
        }
    }

    #[test]
    fn a_retry_taken_early_and_delivered_is_retry_now() {
        let mut w = SetWatch::new(Watched::Retry);
        let none = Window::default();
        assert!(!w.look(
            window(&[("a", 130.0), ("b", 140.0)]),
            &none,
            &Fates::default(),
            100.0
        ));
        // `a` leaves 30 s early: followed, not yet judged.
        assert!(!w.look(window(&[("b", 140.0)]), &none, &Fates::default(), 101.0));
        assert_eq!(w.followed(), ["a"]);
        assert!(w.look(window(&[("b", 140.0)]), &none, &delivered(&["a"]), 102.0));
        assert!(w.followed().is_empty());
    }

    #[test]
    fn a_retry_taken_early_that_fails_again_is_retry_now() {
        let mut w = SetWatch::new(Watched::Retry);
        let none = Window::default();
        w.look(window(&[("a", 130.0)]), &none, &Fates::default(), 100.0);
        // Within one look it ran, failed and was scheduled again.
        assert!(w.look(window(&[("a", 150.0)]), &none, &Fates::default(), 101.0));
        // Or over two looks.
        let mut w = SetWatch::new(Watched::Retry);
        w.look(window(&[("a", 130.0)]), &none, &Fates::default(), 100.0);
        assert!(!w.look(window(&[]), &none, &Fates::default(), 101.0));
        assert!(w.look(window(&[("a", 160.0)]), &none, &Fates::default(), 102.0));
    }

    #[test]
    fn due_retries_kills_and_deletes_are_not_retry_now() {
        let none = Window::default();
        // Due: the poller took it (its time was within the margin).
        let mut w = SetWatch::new(Watched::Retry);
        w.look(window(&[("a", 103.0)]), &none, &Fates::default(), 100.0);
        assert!(!w.look(window(&[]), &none, &Fates::default(), 101.0));
        assert!(!w.look(window(&[]), &none, &delivered(&["a"]), 104.0));
        // Killed: it shows up in the dead set unchanged, never runs; followed until it is
        // given up on.
        let mut w = SetWatch::new(Watched::Retry);
        let dead = window(&[("k", 101.0)]);
        w.look(window(&[("k", 200.0)]), &none, &Fates::default(), 100.0);
        assert!(!w.look(window(&[]), &dead, &Fates::default(), 101.0));
        assert!(!w.look(window(&[]), &dead, &Fates::default(), 102.0));
        assert!(!w.look(window(&[]), &dead, &Fates::default(), 101.0 + FOLLOW_SECS));
        assert!(w.followed().is_empty());
        // Pushed out of a full window by sooner jobs: still in the set, not followed.
        let mut w = SetWatch::new(Watched::Retry);
        let mut full = window(&[("x", 150.0)]);
        full.truncated = true;
        w.look(full, &none, &Fates::default(), 100.0);
        let mut sooner = window(&[("y", 120.0)]);
        sooner.truncated = true;
        assert!(!w.look(sooner, &none, &Fates::default(), 101.0));
        assert!(w.followed().is_empty());
    }

    #[test]
    fn a_dead_job_that_leaves_and_runs_is_revived() {
        let mut w = SetWatch::new(Watched::Dead);
        let none = Window::default();
        w.look(
            window(&[("d", 50.0), ("e", 60.0)]),
            &none,
            &Fates::default(),
            100.0,
        );
        // `d` revived and delivered; `e` deleted.
        assert!(!w.look(window(&[]), &none, &Fates::default(), 101.0));
        assert!(w.look(window(&[]), &none, &delivered(&["d"]), 102.0));
        assert_eq!(w.followed(), ["e"]);
        // Revived and failed into the retry set.
        let mut w = SetWatch::new(Watched::Dead);
        w.look(window(&[("d", 50.0)]), &none, &Fates::default(), 100.0);
        assert!(!w.look(window(&[]), &none, &Fates::default(), 101.0));
        assert!(w.look(
            window(&[]),
            &window(&[("d", 130.0)]),
            &Fates::default(),
            102.0
        ));
        // Revived and died again at once (new score in the dead set).
        let mut w = SetWatch::new(Watched::Dead);
        w.look(window(&[("d", 50.0)]), &none, &Fates::default(), 100.0);
        assert!(w.look(window(&[("d", 101.0)]), &none, &Fates::default(), 101.0));
    }
}
