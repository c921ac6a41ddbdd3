//! The lesson guide: the page's view of the seed's Sidekiq scenario (which steps are done,
//! the live numbers next to each) and the watcher that records what happens in Redis while
//! nobody may be looking (see [`crate::domain::lesson`] for the rules).

use crate::domain::lesson::{
    self, LessonSend, Milestone, Observation, Record, SetWatch, StepState, Watched, Window,
};
use crate::services::live::Queue;
use crate::state::AppState;
use crate::storage::addresses;
use crate::storage::db::{Db, DbError};
use crate::storage::lesson::{self as store, SetLook};
use crate::storage::sidekiq::{RedisError, SidekiqRedis};
use axum::extract::FromRef;
use mail_protocol::SendId;
use serde::Serialize;
use sidekiq_wire::keys;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The seed's button: the lesson sends 1,000 (fewer if `BULK_SEND_MAX` is lower).
pub const LESSON_SIZE: usize = 1_000;
/// Roughly when a job failing every attempt dies: four attempts with Sidekiq's backoff
/// (15–25 s, 16–36 s, 31–61 s between them, plus the poller's rounds) take one to two
/// minutes.
pub const DEAD_AFTER_SECS: f64 = 120.0;
/// How often the watcher looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Everything the lesson page shows.
#[derive(Debug, Clone, Serialize)]
pub struct LessonView {
    /// The seven steps.
    pub steps: Vec<StepState>,
    /// Whether Redis answered (else only the sends' stored copies are judged).
    pub redis_ok: bool,
    /// Addresses registered.
    pub addresses: i64,
    /// The send size the lesson asks for.
    pub lesson_size: usize,
    /// Enough addresses for it.
    pub enough_addresses: bool,
    /// The send without errors the lesson looks at.
    pub plain: Option<LessonSend>,
    /// The send with errors the lesson looks at.
    pub errors: Option<LessonSend>,
    /// What to type into the admin's filter for the error send's jobs.
    pub errors_filter: Option<String>,
    /// Queues and their sizes now.
    pub queues: Vec<Queue>,
    /// `ZCARD retry`.
    pub retry_size: u64,
    /// `ZCARD dead`.
    pub dead_size: u64,
    /// Seconds until the next retry is due, when one is waiting.
    pub next_retry_in_secs: Option<i64>,
    /// When the error send's first jobs should die (epoch seconds), while none has.
    pub dead_expected_at: Option<f64>,
    /// When the lesson was started over, if it was.
    pub started_at: Option<f64>,
}

/// What the lesson reads from.
#[derive(Clone)]
pub struct LessonSources {
    /// Sends and addresses.
    pub db: Db,
    /// Progress, the record, the retry and dead sets.
    pub redis: Arc<SidekiqRedis>,
    /// `min(1,000, BULK_SEND_MAX)`.
    pub lesson_size: usize,
}

impl FromRef<AppState> for LessonSources {
    fn from_ref(s: &AppState) -> Self {
        LessonSources {
            db: s.db.clone(),
            redis: s.redis.clone(),
            lesson_size: LESSON_SIZE.min(s.config.bulk_send_max),
        }
    }
}

/// The lesson's sends with their instances.
type Sends = (
    Option<(LessonSend, Option<String>)>,
    Option<(LessonSend, Option<String>)>,
);

/// Something the watcher could not read; it tries again at its next look.
#[derive(Debug, thiserror::Error)]
enum LookError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Redis(#[from] RedisError),
}

fn now() -> f64 {
    sidekiq_wire::Timestamp::now().as_secs()
}

fn send_id(id: i64, instance: Option<&str>) -> SendId {
    instance.map_or_else(|| SendId::for_mail_job(id), |i| SendId::new(i, id))
}

impl LessonSources {
    fn instance(&self) -> String {
        self.db.instance().id.clone()
    }

    async fn record(&self) -> Result<Record, RedisError> {
        let instance = self.instance();
        self.redis
            .read(|mut c| async move { store::read_record(&mut c, &instance).await })
            .await
    }

    async fn sends(&self, started_at: Option<f64>) -> Result<(Sends, i64), DbError> {
        let size = self.lesson_size;
        self.db
            .call(move |c| {
                Ok((
                    (
                        store::latest_send(c, false, size, started_at)?,
                        store::latest_send(c, true, size, started_at)?,
                    ),
                    addresses::count(c)?,
                ))
            })
            .await
    }

    /// The sends with the worker's live counters merged in.
    async fn live_sends(&self, sends: Sends) -> (Option<LessonSend>, Option<LessonSend>, bool) {
        let (plain, errors) = sends;
        let ids: Vec<SendId> = [&plain, &errors]
            .iter()
            .filter_map(|s| s.as_ref())
            .map(|(s, i)| send_id(s.id, i.as_deref()))
            .collect();
        let progress = if ids.is_empty() {
            Ok(Vec::new())
        } else {
            self.redis.progress(ids).await
        };
        let ok = progress.is_ok();
        let mut live = progress.unwrap_or_default().into_iter();
        let plain = plain.map(|(s, _)| s.with_live(live.next()));
        let errors = errors.map(|(s, _)| s.with_live(live.next()));
        (plain, errors, ok)
    }

    /// The page's view.
    ///
    /// # Errors
    /// Database errors (Redis errors only leave the Redis parts empty).
    pub async fn view(&self) -> Result<LessonView, DbError> {
        let record = self.record().await;
        let mut redis_ok = record.is_ok();
        let record = record.unwrap_or_default();
        let (sends, addresses) = self.sends(record.started_at).await?;
        let (plain, errors, progress_ok) = self.live_sends(sends).await;
        redis_ok &= progress_ok;
        let sets = self
            .redis
            .read(|mut c| async move {
                let queues = sidekiq_wire::overview::queues(&mut c).await?;
                let (retry_size, dead_size, first): (u64, u64, Vec<(String, f64)>) = redis::pipe()
                    .zcard(keys::RETRY)
                    .zcard(keys::DEAD)
                    .zrange_withscores(keys::RETRY, 0, 0)
                    .query_async(&mut c)
                    .await?;
                Ok((
                    queues,
                    retry_size,
                    dead_size,
                    first.first().map(|(_, s)| *s),
                ))
            })
            .await;
        redis_ok &= sets.is_ok();
        let (queues, retry_size, dead_size, next_retry) = sets.unwrap_or_default();
        let now = now();
        let observation = Observation {
            plain: plain.clone(),
            errors: errors.clone(),
            record: record.clone(),
        };
        let steps = lesson::steps(&observation);
        let dead_seen = steps.iter().any(|s| s.step == lesson::Step::Dead && s.done);
        Ok(LessonView {
            steps,
            redis_ok,
            addresses,
            lesson_size: self.lesson_size,
            enough_addresses: addresses >= self.lesson_size as i64,
            errors_filter: errors.as_ref().map(|s| lesson::admin_filter(s.id)),
            dead_expected_at: errors
                .as_ref()
                .filter(|_| !dead_seen)
                .map(|s| s.created_secs + DEAD_AFTER_SECS),
            plain,
            errors,
            queues: queues.into_iter().map(Queue::from).collect(),
            retry_size,
            dead_size,
            next_retry_in_secs: next_retry.map(|at| (at - now).max(0.0).ceil() as i64),
            started_at: record.started_at,
        })
    }

    /// Starts the lesson over: steps done so far are forgotten, earlier sends no longer
    /// count.
    ///
    /// # Errors
    /// Redis errors (nothing changed).
    pub async fn start_over(&self) -> Result<(), RedisError> {
        let instance = self.instance();
        let at = now();
        self.redis
            .read(|mut c| async move { store::start_over(&mut c, &instance, at).await })
            .await
    }

    /// Looks once a second until cancelled and records milestones (see
    /// [`crate::domain::lesson`]); a look that fails is simply skipped.
    pub async fn watch(self, stop: CancellationToken) {
        let mut watcher = Watcher {
            retry: SetWatch::new(Watched::Retry),
            dead: SetWatch::new(Watched::Dead),
        };
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.look(&mut watcher).await {
                tracing::debug!(error = %e, "lesson watcher skipped a look");
            }
        }
    }

    async fn look(&self, w: &mut Watcher) -> Result<(), LookError> {
        let record = self.record().await?;
        let (sends, _) = self.sends(record.started_at).await?;
        let Some((errors, instance)) = sends.1 else {
            // Nothing to watch before the send with errors.
            return Ok(());
        };
        let id = send_id(errors.id, instance.as_deref());
        let live = self.redis.progress(vec![id]).await?.pop();
        let errors = errors.with_live(live);
        let mut seen = Vec::new();
        if errors.retrying > 0 {
            seen.push(Milestone::Retries);
        }
        let db_instance = self.instance();
        let followed: Vec<String> = w
            .retry
            .followed()
            .into_iter()
            .chain(w.dead.followed())
            .collect();
        let (retry, dead, delivered) = self
            .redis
            .read(|mut c| async move {
                let retry = store::look_at_set(&mut c, keys::RETRY, &db_instance).await?;
                let dead = store::look_at_set(&mut c, keys::DEAD, &db_instance).await?;
                let delivered = store::delivered(&mut c, &followed).await?;
                Ok((retry, dead, delivered))
            })
            .await?;
        // Seen on the Dead page itself: died after its retries, or killed from Retries.
        if dead.sends.contains(&errors.id) {
            seen.push(Milestone::Dead);
        }
        let now = now();
        let fates = lesson::Fates { delivered };
        let SetLook { window: retry, .. } = retry;
        let SetLook { window: dead, .. } = dead;
        if w.retry.look(retry.clone(), &Window::default(), &fates, now) {
            seen.push(Milestone::RetryNow);
        }
        if w.dead.look(dead, &retry, &fates, now) {
            seen.push(Milestone::Revive);
        }
        for m in seen {
            if record.seen(m).is_some() {
                continue;
            }
            tracing::info!(milestone = m.field(), "lesson milestone seen");
            let instance = self.instance();
            self.redis
                .read(
                    |mut c| async move { store::record_milestone(&mut c, &instance, m, now).await },
                )
                .await?;
        }
        Ok(())
    }
}

/// The watcher's memory between looks.
struct Watcher {
    retry: SetWatch,
    dead: SetWatch,
}
