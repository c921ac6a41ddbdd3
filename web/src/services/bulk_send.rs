//! The bulk send (the seed's 1,000 / 5,000 / 10,000 and "1,000 with 30% errors" buttons):
//! check the request, record a `mail_jobs` row, then stream distinct recipients picked at
//! random from SQLite to Redis, 1,000 `MailSenderJob`s per `LPUSH`. Only a chunk or two of
//! recipients and jobs is in memory at a time (a 100,000-mail send adds about 9 MB), where
//! building every job first cost 2.3 KB per job.

use crate::flags::SendVariant;
use crate::storage::addresses::{self, Recipient};
use crate::storage::db::{Db, DbError, write_transaction};
use crate::storage::mail_jobs;
use crate::storage::sidekiq::{RedisError, SidekiqRedis, WriteRefusal};
use mail_protocol::keys::progress as progress_key;
use mail_protocol::{MailSenderArgs, SendId};

/// Queues a bulk send may use.
pub const QUEUES: [&str; 2] = [
    mail_protocol::job::DEFAULT_QUEUE,
    mail_protocol::job::HIGH_QUEUE,
];

/// A bulk send as the form asks for it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Mails to send, 1..=max.
    pub count: usize,
    /// One of [`QUEUES`]; `None`: the experiment's arm decides ([`Request::in_arm`]).
    pub queue: Option<&'static str>,
    /// The seed's "30% errors" simulation.
    pub simulate_error: bool,
}

/// Where a send's jobs go and which arm of the experiment it counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// The queue.
    pub queue: &'static str,
    /// `default` or `priority`; `None` when the request named its queue itself.
    pub variant: Option<&'static str>,
}

impl Request {
    /// The routing of this request for a visitor in `variant`: the queue the request named
    /// (outside the experiment), else the arm's queue.
    pub fn in_arm(&self, variant: SendVariant) -> Routing {
        match self.queue {
            Some(queue) => Routing {
                queue,
                variant: None,
            },
            None => Routing {
                queue: variant.queue(),
                variant: Some(variant.as_str()),
            },
        }
    }
}

/// Why a form does not make a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The count is not a number in 1..=max.
    BadCount {
        /// The largest count allowed (`BULK_SEND_MAX`).
        max: usize,
    },
    /// Not one of [`QUEUES`].
    BadQueue,
}

impl Request {
    /// Reads the form's fields: `count` as `1000`, `1,000` or `1_000`; an empty queue leaves
    /// the choice to the experiment; `simulate_error` as Rails' `params[:simulate_error] == 'true'`, plus what
    /// a checkbox sends.
    ///
    /// # Errors
    /// [`Refused`].
    pub fn parse(
        count: &str,
        queue: &str,
        simulate_error: &str,
        max: usize,
    ) -> Result<Self, Refused> {
        let count = match parse_count(count) {
            Some(n) if (1..=max).contains(&n) => n,
            _ => return Err(Refused::BadCount { max }),
        };
        let queue = if queue.is_empty() {
            None
        } else {
            Some(
                QUEUES
                    .iter()
                    .copied()
                    .find(|q| *q == queue)
                    .ok_or(Refused::BadQueue)?,
            )
        };
        Ok(Request {
            count,
            queue,
            simulate_error: matches!(simulate_error, "true" | "1" | "on"),
        })
    }
}

/// `1000`, `1,000` or `1_000`.
pub fn parse_count(raw: &str) -> Option<usize> {
    raw.trim().replace([',', '_'], "").parse().ok()
}

/// What happened to a bulk send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every job is in its queue (`count` can be below the request when addresses were
    /// deleted while it ran; the record says what was sent).
    Enqueued {
        /// `mail_jobs.id`.
        mail_job_id: i64,
        /// Jobs enqueued.
        count: usize,
    },
    /// Fewer addresses are stored than asked for; nothing was recorded or enqueued.
    TooFew {
        /// Stored addresses.
        have: i64,
        /// Asked for.
        need: usize,
    },
    /// Redis refused the jobs before any was enqueued; the send is recorded as failed.
    EnqueueFailed {
        /// `mail_jobs.id`.
        mail_job_id: i64,
        /// Why.
        reason: WriteRefusal,
    },
    /// Redis failed part way: `enqueued` jobs are in the queue (and will be sent), the rest
    /// are not; the record's total is what was enqueued.
    PartlyEnqueued {
        /// `mail_jobs.id`.
        mail_job_id: i64,
        /// Jobs in the queue.
        enqueued: usize,
        /// Asked for.
        asked: usize,
        /// Why the rest were not enqueued.
        reason: WriteRefusal,
    },
}

/// Recipients read, and jobs built and pushed, per round: one `LPUSH` of Sidekiq's bulk
/// size. Memory per send is a few chunks, whatever the count.
const CHUNK: usize = sidekiq_wire::client::BULK_CHUNK;

/// Runs a bulk send routed by `routing`: records it, then streams random recipients from
/// SQLite to Redis a chunk at a time.
///
/// # Errors
/// Database errors (Redis errors are an outcome).
pub async fn run(
    db: &Db,
    redis: &SidekiqRedis,
    request: Request,
    routing: Routing,
) -> Result<Outcome, DbError> {
    let started = std::time::Instant::now();
    let Request {
        count,
        simulate_error,
        ..
    } = request;
    let Routing { queue, variant } = routing;
    let instance = db.instance().id.clone();
    let row_instance = instance.clone();
    let created = db
        .call(move |c| {
            let tx = write_transaction(c)?;
            let have = addresses::count(&tx)?;
            if have < count as i64 {
                return Ok(Err(have));
            }
            let created = mail_jobs::create(
                &tx,
                mail_jobs::NewSend {
                    total: count,
                    queue,
                    variant,
                    simulate_error,
                    instance: &row_instance,
                },
            )?;
            tx.commit()?;
            Ok(Ok(created))
        })
        .await?;
    let (mail_job_id, job_id) = match created {
        Ok(c) => c,
        Err(have) => return Ok(Outcome::TooFew { have, need: count }),
    };
    let send = Send {
        instance,
        mail_job_id,
        queue,
        simulate_error,
    };
    let (enqueued, failure) = stream(db, redis, &send, count).await?;
    let outcome = match (enqueued, failure) {
        (0, Some(e)) => {
            tracing::error!(mail_job_id, error.cause_chain = %e, "bulk send enqueue failed");
            db.call(move |c| mail_jobs::mark_enqueue_failed(c, mail_job_id))
                .await?;
            return Ok(Outcome::EnqueueFailed {
                mail_job_id,
                reason: e.refusal(),
            });
        }
        (enqueued, Some(e)) => {
            tracing::error!(mail_job_id, enqueued, asked = count, error.cause_chain = %e,
                "bulk send enqueue failed part way");
            Outcome::PartlyEnqueued {
                mail_job_id,
                enqueued,
                asked: count,
                reason: e.refusal(),
            }
        }
        (enqueued, None) => Outcome::Enqueued {
            mail_job_id,
            count: enqueued,
        },
    };
    if enqueued != count {
        // The record counts what is really in the queue, so the send can complete.
        db.call(move |c| mail_jobs::set_total(c, mail_job_id, enqueued))
            .await?;
    }
    if enqueued > 0 {
        register(
            redis,
            &SendId::new(&send.instance, mail_job_id),
            enqueued,
            queue,
        )
        .await;
    }
    tracing::info!(
        mail_job_id,
        job_id,
        count = enqueued,
        queue,
        variant = variant.unwrap_or("-"),
        simulate_error,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bulk send enqueued"
    );
    Ok(outcome)
}

/// Tells the worker the send's real total, so jobs deleted before they ran (from the
/// Sidekiq admin) end counted as cancelled instead of leaving the send pending forever.
async fn register(redis: &SidekiqRedis, send: &SendId, total: usize, queue: &str) {
    let send_for_read = send.clone();
    let queue = queue.to_owned();
    let registered = redis
        .read(move |mut c| async move {
            mail_protocol::progress::register_send(&mut c, &send_for_read, total, &queue).await
        })
        .await;
    if let Err(e) = registered {
        tracing::warn!(send = %send, error = %e, "could not register the send's total; deleted jobs will leave it pending");
    }
}

/// What every job of one send carries.
struct Send {
    instance: String,
    mail_job_id: i64,
    queue: &'static str,
    simulate_error: bool,
}

/// Reads up to `count` random recipients on the blocking pool and pushes their jobs a
/// chunk at a time as they arrive (the reader waits while a chunk is being pushed).
/// Returns how many jobs were pushed and the Redis error that stopped it, if any.
async fn stream(
    db: &Db,
    redis: &SidekiqRedis,
    send: &Send,
    count: usize,
) -> Result<(usize, Option<RedisError>), DbError> {
    let client = match redis.client().await {
        Ok(c) => c,
        Err(e) => return Ok((0, Some(e))),
    };
    // A progress hash left under this key (the same database restored from a backup while
    // Redis kept its data) would be counted into the new send.
    let mut conn = client.connection();
    if let Err(e) = redis::cmd("DEL")
        .arg(progress_key(&SendId::new(&send.instance, send.mail_job_id)))
        .query_async::<()>(&mut conn)
        .await
    {
        return Ok((0, Some(e.into())));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Recipient>>(1);
    let reader = {
        let db = db.clone();
        tokio::spawn(async move {
            db.call(move |c| {
                addresses::for_each_random_chunk(c, count, CHUNK, |chunk| {
                    tx.blocking_send(chunk).is_ok()
                })
            })
            .await
        })
    };
    let mut pushed = 0;
    let mut failure = None;
    while let Some(chunk) = rx.recv().await {
        let jobs = chunk
            .into_iter()
            .map(|r| {
                MailSenderArgs {
                    to: r.email,
                    name: Some(r.name),
                    email_id: Some(r.id),
                    mail_job_id: Some(send.mail_job_id),
                    instance: Some(send.instance.clone()),
                    simulate_error: send.simulate_error,
                }
                .into_job(send.queue)
            })
            .collect();
        match client.push_bulk(jobs).await {
            Ok(jids) => pushed += jids.len(),
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
    }
    // Stops the reader if Redis failed.
    drop(rx);
    reader.await.map_err(|e| DbError::Task(e.to_string()))??;
    Ok((pushed, failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        assert_eq!(
            Request::parse("1,000", "", "true", 5_000),
            Ok(Request {
                count: 1_000,
                queue: None,
                simulate_error: true
            })
        );
        assert_eq!(
            Request::parse("10", "high", "", 5_000).map(|r| r.queue),
            Ok(Some("high"))
        );
        for bad in ["0", "5001", "-5", "abc", ""] {
            assert_eq!(
                Request::parse(bad, "", "", 5_000),
                Err(Refused::BadCount { max: 5_000 }),
                "{bad}"
            );
        }
        assert_eq!(
            Request::parse("10", "low", "", 5_000),
            Err(Refused::BadQueue)
        );
    }

    #[test]
    fn the_arm_routes_unless_the_request_names_a_queue() {
        let free = Request::parse("10", "", "", 100).unwrap();
        assert_eq!(
            free.in_arm(SendVariant::Priority),
            Routing {
                queue: "high",
                variant: Some("priority")
            }
        );
        assert_eq!(free.in_arm(SendVariant::Default).queue, "default");
        let named = Request::parse("10", "default", "", 100).unwrap();
        assert_eq!(
            named.in_arm(SendVariant::Priority),
            Routing {
                queue: "default",
                variant: None
            }
        );
    }
}
