//! The `mail_jobs` table: create (with the experiment's arm), mark failed, list, write merged
//! progress and the finish time back.
//!
//! Plain functions over a `&Connection`, run inside [`crate::storage::db::Db::call`].

use crate::domain::mail_job::{MailJob, Status, percentage};
use crate::storage::db::{DbError, now_timestamp, write_transaction};
use mail_protocol::SendId;
use rusqlite::{Connection, params};

/// What a new bulk send is recorded with.
#[derive(Debug, Clone, Copy)]
pub struct NewSend<'a> {
    /// Jobs to enqueue.
    pub total: usize,
    /// The queue its jobs go to.
    pub queue: &'a str,
    /// The experiment's arm (`None`: outside it).
    pub variant: Option<&'a str>,
    /// The "30% errors" button.
    pub simulate_error: bool,
    /// The database's instance id.
    pub instance: &'a str,
}

/// Creates a pending bulk send; returns `(id, job_id)`.
///
/// # Errors
/// [`DbError`].
pub fn create(conn: &Connection, send: NewSend<'_>) -> Result<(i64, String), DbError> {
    let job_id = sidekiq_wire::random_hex(12);
    let now = now_timestamp();
    conn.execute(
        "INSERT INTO mail_jobs (job_id, total_count, status, queue, variant, simulate_error, created_at, updated_at, instance)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6, ?7)",
        params![
            job_id,
            send.total as i64,
            send.queue,
            send.variant,
            send.simulate_error,
            now,
            send.instance
        ],
    )?;
    Ok((conn.last_insert_rowid(), job_id))
}

/// Marks a bulk send whose jobs could not be enqueued as failed.
///
/// # Errors
/// [`DbError`].
pub fn mark_enqueue_failed(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE mail_jobs SET status = 'failed', updated_at = ?2 WHERE id = ?1",
        params![id, now_timestamp()],
    )?;
    Ok(())
}

/// Sets a send's total to what was really enqueued (fewer than asked: addresses deleted
/// meanwhile, or Redis failed part way).
///
/// # Errors
/// [`DbError`].
pub fn set_total(conn: &Connection, id: i64, total: usize) -> Result<(), DbError> {
    if total == 0 {
        return mark_enqueue_failed(conn, id);
    }
    conn.execute(
        "UPDATE mail_jobs SET total_count = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, total as i64, now_timestamp()],
    )?;
    Ok(())
}

/// The most recent `limit` bulk sends, newest first, as stored.
///
/// # Errors
/// [`DbError`].
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<MailJob>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, COALESCE(job_id, ''), total_count, sent_count, failed_count, retrying_count,
                status, queue, simulate_error, created_at, instance, variant, finished_at,
                cancelled_count
         FROM mail_jobs ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            let total: i64 = r.get(2)?;
            let sent: i64 = r.get(3)?;
            let failed: i64 = r.get(4)?;
            let id: i64 = r.get(0)?;
            let instance: Option<String> = r.get(10)?;
            let job = MailJob {
                id,
                job_id: r.get(1)?,
                total_count: total,
                sent_count: sent,
                failed_count: failed,
                retrying_count: r.get(5)?,
                cancelled_count: r.get(13)?,
                status: Status::parse(&r.get::<_, String>(6)?),
                queue: r.get(7)?,
                simulate_error: r.get(8)?,
                created_at: r.get(9)?,
                variant: r.get(11)?,
                finished_at: r.get(12)?,
                progress_percentage: 0.0,
                send_id: match instance {
                    Some(instance) => SendId::new(&instance, id),
                    None => SendId::for_mail_job(id),
                },
            };
            Ok(MailJob {
                progress_percentage: percentage(job.counts()),
                ..job
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Stores merged counters and status.
///
/// # Errors
/// [`DbError`].
pub fn save(conn: &mut Connection, jobs: &[MailJob]) -> Result<(), DbError> {
    let tx = write_transaction(conn)?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE mail_jobs SET sent_count = ?2, failed_count = ?3, retrying_count = ?4,
                    status = ?5, updated_at = ?6, finished_at = ?7, cancelled_count = ?8
             WHERE id = ?1",
        )?;
        let now = now_timestamp();
        for j in jobs {
            stmt.execute(params![
                j.id,
                j.sent_count,
                j.failed_count,
                j.retrying_count,
                j.status.as_str(),
                now,
                j.finished_at,
                j.cancelled_count
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}
