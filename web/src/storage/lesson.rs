//! What the lesson guide reads and writes: the sends it judges (SQLite), its record of
//! milestones (a Redis hash of the web's own), and bounded looks at Sidekiq's retry and dead
//! sets.
//!
//! The record lives in Redis under [`record_key`] (`mailweb:lesson:<instance>`, no TTL):
//! everything the later steps are about happens in Redis, every web replica sees one record,
//! and a database recreated after a loss (a new instance id) starts a new lesson. Fields:
//! `started_at` and one per [`Milestone`], epoch seconds of the first sighting.

use crate::domain::lesson::{LessonSend, Milestone, Record, Window};
use crate::domain::mail_job::Status;
use crate::storage::db::DbError;
use redis::aio::ConnectionLike;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use sidekiq_wire::keys;
use std::collections::{HashMap, HashSet};

/// Most members read from the retry or the dead set in one look: the admin shows 25 per page,
/// so a click is always on one of the first; a 10,000-job backlog is not read every second.
pub const WINDOW: usize = 1_000;

/// The Redis hash holding the lesson of the database `instance`.
pub fn record_key(instance: &str) -> String {
    format!("mailweb:lesson:{instance}")
}

/// The lesson's record (an absent hash is a lesson never started over, nothing seen yet).
///
/// # Errors
/// Redis errors.
pub async fn read_record<C: ConnectionLike>(
    conn: &mut C,
    instance: &str,
) -> redis::RedisResult<Record> {
    let fields: HashMap<String, f64> = redis::cmd("HGETALL")
        .arg(record_key(instance))
        .query_async(conn)
        .await?;
    Ok(Record {
        started_at: fields.get("started_at").copied(),
        seen: Milestone::ALL
            .iter()
            .filter_map(|m| fields.get(m.field()).map(|&t| (m.field(), t)))
            .collect(),
    })
}

/// Records the first sighting of `milestone` at `now` (a later one changes nothing).
///
/// # Errors
/// Redis errors.
pub async fn record_milestone<C: ConnectionLike>(
    conn: &mut C,
    instance: &str,
    milestone: Milestone,
    now: f64,
) -> redis::RedisResult<()> {
    redis::cmd("HSETNX")
        .arg(record_key(instance))
        .arg(milestone.field())
        .arg(now)
        .query_async(conn)
        .await
}

/// Starts the lesson over at `now`: milestones forgotten, earlier sends no longer count.
///
/// # Errors
/// Redis errors.
pub async fn start_over<C: ConnectionLike>(
    conn: &mut C,
    instance: &str,
    now: f64,
) -> redis::RedisResult<()> {
    redis::pipe()
        .atomic()
        .del(record_key(instance))
        .hset(record_key(instance), "started_at", now)
        .query_async(conn)
        .await
}

/// The first [`WINDOW`] members of a sorted set in the admin's page order: the retry set
/// soonest first, the dead set newest first.
#[derive(Debug, Clone, Default)]
pub struct SetLook {
    /// jid ⇒ score.
    pub window: Window,
    /// The set's size.
    pub size: u64,
    /// The lowest score in the window (the next retry's time, for the retry set).
    pub first_score: Option<f64>,
    /// `mail_job_id`s of this database's sends that have jobs in the window.
    pub sends: HashSet<i64>,
}

/// Only what the lesson needs of a job.
#[derive(Deserialize)]
struct JobHead {
    #[serde(default)]
    jid: String,
    #[serde(default)]
    args: Vec<serde_json::Value>,
}

/// Looks at `set` (`retry` or `dead`).
///
/// # Errors
/// Redis errors. Members that are not jobs are skipped.
pub async fn look_at_set<C: ConnectionLike>(
    conn: &mut C,
    set: &str,
    instance: &str,
) -> redis::RedisResult<SetLook> {
    let newest_first = set == keys::DEAD;
    let (size, members): (u64, Vec<(String, f64)>) = redis::pipe()
        .zcard(set)
        .cmd(if newest_first { "ZREVRANGE" } else { "ZRANGE" })
        .arg(set)
        .arg(0)
        .arg(WINDOW - 1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    let mut look = SetLook {
        size,
        ..SetLook::default()
    };
    look.window.truncated = size as usize > members.len();
    for (member, score) in members {
        let Ok(head) = serde_json::from_str::<JobHead>(&member) else {
            continue;
        };
        look.first_score = Some(look.first_score.map_or(score, |s: f64| s.min(score)));
        if let Some(id) = own_send(&head, instance) {
            look.sends.insert(id);
        }
        if !head.jid.is_empty() {
            look.window.jobs.insert(head.jid, score);
        }
    }
    Ok(look)
}

/// The `mail_job_id` of a `MailSenderJob` of this database's sends.
fn own_send(head: &JobHead, instance: &str) -> Option<i64> {
    let args = head.args.first()?;
    let id = args.get("mail_job_id")?.as_i64()?;
    let same = args
        .get("instance")
        .and_then(|v| v.as_str())
        .is_none_or(|i| i == instance);
    same.then_some(id)
}

/// The jids among `jids` whose delivery state is `sent`.
///
/// # Errors
/// Redis errors.
pub async fn delivered<C: ConnectionLike>(
    conn: &mut C,
    jids: &[String],
) -> redis::RedisResult<Vec<String>> {
    if jids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = jids
        .iter()
        .map(|j| mail_protocol::keys::delivery(j))
        .collect();
    let states: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    Ok(jids
        .iter()
        .zip(states)
        .filter(|(_, s)| s.as_deref() == Some(mail_protocol::DeliveryState::Sent.as_str()))
        .map(|(j, _)| j.clone())
        .collect())
}

/// `started_at` (epoch seconds) as stored `created_at` values are written, so they compare
/// as text.
fn since_text(started_at: Option<f64>) -> String {
    started_at
        .and_then(|t| chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64))
        .map_or_else(String::new, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
}

/// The latest send with (`errors`) or without simulated errors of at least `min_total`
/// jobs, made at or after `started_at`, as stored, with its instance (`None` for sends made
/// before databases had one).
///
/// # Errors
/// [`DbError`].
pub fn latest_send(
    conn: &Connection,
    errors: bool,
    min_total: usize,
    started_at: Option<f64>,
) -> Result<Option<(LessonSend, Option<String>)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, total_count, sent_count, failed_count, retrying_count, status,
                simulate_error, created_at, instance
         FROM mail_jobs
         WHERE simulate_error = ?1 AND total_count >= ?2 AND created_at >= ?3
         ORDER BY id DESC LIMIT 1",
    )?;
    let row = stmt
        .query_row(
            params![errors, min_total as i64, since_text(started_at)],
            |r| {
                let created_at: String = r.get(7)?;
                let created_secs = chrono::DateTime::parse_from_rfc3339(&created_at)
                    .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
                Ok((
                    LessonSend {
                        id: r.get(0)?,
                        total: r.get(1)?,
                        sent: r.get(2)?,
                        failed: r.get(3)?,
                        retrying: r.get(4)?,
                        status: Status::parse(&r.get::<_, String>(5)?),
                        simulate_error: r.get(6)?,
                        created_at,
                        created_secs,
                    },
                    r.get::<_, Option<String>>(8)?,
                ))
            },
        )
        .optional()?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_compare_with_stored_ones() {
        assert_eq!(since_text(None), "");
        assert_eq!(
            since_text(Some(1_795_495_443.25)),
            "2026-11-24T04:44:03.250Z"
        );
    }

    #[test]
    fn only_this_databases_sends_count() {
        let head: JobHead = serde_json::from_str(
            r#"{"jid":"j","args":[{"to":"a@x.test","mail_job_id":7,"instance":"ab"}]}"#,
        )
        .unwrap();
        assert_eq!(own_send(&head, "ab"), Some(7));
        assert_eq!(own_send(&head, "cd"), None);
        let old: JobHead =
            serde_json::from_str(r#"{"jid":"j","args":[{"to":"a@x.test","mail_job_id":7}]}"#)
                .unwrap();
        assert_eq!(own_send(&old, "cd"), Some(7));
        let other: JobHead = serde_json::from_str(r#"{"jid":"j","args":[1]}"#).unwrap();
        assert_eq!(own_send(&other, "ab"), None);
    }
}
