//! The bulk send (the seed's 1,000 / 5,000 / 10,000 and "1,000 with 30% errors" buttons):
//! check the request, pick distinct recipients at random, record a `mail_jobs` row, and
//! enqueue one `MailSenderJob` per recipient with `push_bulk` (1,000 per LPUSH).

use crate::storage::addresses::{self, Recipient};
use crate::storage::db::{Db, DbError, write_transaction};
use crate::storage::mail_jobs;
use crate::storage::sidekiq::{RedisError, SidekiqRedis};
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
    /// One of [`QUEUES`].
    pub queue: &'static str,
    /// The seed's "30% errors" simulation.
    pub simulate_error: bool,
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
    /// Reads the form's fields: `count` as `1000`, `1,000` or `1_000`; an empty queue means
    /// `default`; `simulate_error` as Rails' `params[:simulate_error] == 'true'`, plus what
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
            mail_protocol::job::DEFAULT_QUEUE
        } else {
            QUEUES
                .iter()
                .copied()
                .find(|q| *q == queue)
                .ok_or(Refused::BadQueue)?
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
    /// Every job is in its queue.
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
    /// Redis refused the jobs; the send is recorded as failed.
    EnqueueFailed {
        /// `mail_jobs.id`.
        mail_job_id: i64,
    },
}

/// Runs a bulk send.
///
/// # Errors
/// Database errors (Redis errors are an [`Outcome::EnqueueFailed`]).
pub async fn run(db: &Db, redis: &SidekiqRedis, request: Request) -> Result<Outcome, DbError> {
    let started = std::time::Instant::now();
    let Request {
        count,
        queue,
        simulate_error,
    } = request;
    let instance = db.instance().id.clone();
    let row_instance = instance.clone();
    let picked = db
        .call(move |c| {
            let tx = write_transaction(c)?;
            let picked = match addresses::pick_random(&tx, count)? {
                Ok(p) => p,
                Err(available) => return Ok(Err(available)),
            };
            let (id, job_id) = mail_jobs::create(&tx, count, queue, simulate_error, &row_instance)?;
            tx.commit()?;
            Ok(Ok((picked, id, job_id)))
        })
        .await?;
    let (recipients, mail_job_id, job_id) = match picked {
        Ok(p) => p,
        Err(have) => return Ok(Outcome::TooFew { have, need: count }),
    };
    let send = Send {
        instance: &instance,
        mail_job_id,
        queue,
        simulate_error,
    };
    match enqueue(redis, &send, recipients).await {
        Ok(()) => {
            tracing::info!(
                mail_job_id,
                job_id,
                count,
                queue,
                simulate_error,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "bulk send enqueued"
            );
            Ok(Outcome::Enqueued { mail_job_id, count })
        }
        Err(e) => {
            tracing::error!(mail_job_id, error.cause_chain = %e, "bulk send enqueue failed");
            db.call(move |c| mail_jobs::mark_enqueue_failed(c, mail_job_id))
                .await?;
            Ok(Outcome::EnqueueFailed { mail_job_id })
        }
    }
}

/// What every job of one send carries.
struct Send<'a> {
    instance: &'a str,
    mail_job_id: i64,
    queue: &'a str,
    simulate_error: bool,
}

async fn enqueue(
    redis: &SidekiqRedis,
    send: &Send<'_>,
    recipients: Vec<Recipient>,
) -> Result<(), RedisError> {
    let client = redis.client().await?;
    // A progress hash left under this key (the same database restored from a backup while
    // Redis kept its data) would be counted into the new send.
    let mut conn = client.connection();
    redis::cmd("DEL")
        .arg(progress_key(&SendId::new(send.instance, send.mail_job_id)))
        .query_async::<()>(&mut conn)
        .await?;
    let jobs = recipients
        .into_iter()
        .map(|r| {
            MailSenderArgs {
                to: r.email,
                name: Some(r.name),
                email_id: Some(r.id),
                mail_job_id: Some(send.mail_job_id),
                instance: Some(send.instance.to_owned()),
                simulate_error: send.simulate_error,
            }
            .into_job(send.queue)
        })
        .collect();
    client.push_bulk(jobs).await?;
    Ok(())
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
                queue: "default",
                simulate_error: true
            })
        );
        assert_eq!(
            Request::parse("10", "high", "", 5_000).map(|r| r.queue),
            Ok("high")
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
}
