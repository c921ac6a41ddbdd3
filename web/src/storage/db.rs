//! SQLite access: opening with the right pragmas, migrations, and running queries off the
//! async runtime.
//!
//! rusqlite is blocking, so every query runs in [`Db::call`] on tokio's blocking pool with a
//! connection taken from a small idle list (WAL lets readers run beside the one writer).

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The schema, in order. `PRAGMA user_version` holds how many have been applied.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_create_emails",
        include_str!("../../../migrations/0001_create_emails.sql"),
    ),
    (
        "0002_create_mail_jobs",
        include_str!("../../../migrations/0002_create_mail_jobs.sql"),
    ),
];

/// Idle connections kept for reuse; more are opened on demand under load.
const MAX_IDLE: usize = 4;

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database directory could not be created.
    #[error("create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was migrated by a newer version of this app.
    #[error("database schema version {found} is newer than this app knows ({known})")]
    TooNew {
        /// `user_version` found.
        found: usize,
        /// Migrations this binary has.
        known: usize,
    },
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// A cheap-to-clone handle on the database file.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the file and applies pending migrations.
    ///
    /// # Errors
    /// [`DbError`].
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                idle: Mutex::new(vec![conn]),
            }),
        })
    }

    /// Runs `f` with a connection on the blocking pool, inside the caller's tracing span.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`DbError::Task`].
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let taken = inner.idle.lock().ok().and_then(|mut idle| idle.pop());
                let mut conn = match taken {
                    Some(c) => c,
                    None => open_connection(&inner.path)?,
                };
                let result = f(&mut conn);
                // A connection left inside a transaction (a panic in `f` cannot get here, an
                // early `?` drops the Transaction which rolls back) is safe to reuse.
                if let Ok(mut idle) = inner.idle.lock()
                    && idle.len() < MAX_IDLE
                {
                    idle.push(conn);
                }
                result
            })
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// The readiness check: a fresh connection (no create) reads the schema, so a deleted,
    /// replaced or corrupted file is noticed. (`SELECT 1` on a pooled connection would
    /// succeed without touching the file at all.)
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn ping(&self) -> Result<(), DbError> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(2))?;
            conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    // Writers wait for each other instead of failing with SQLITE_BUSY (imports hold the
    // write lock for about a second).
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// Applies each migration after `user_version` in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = write_transaction(conn)?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
        tracing::info!(migration = name, "applied migration");
    }
    Ok(())
}

/// Starts a transaction that will write: `BEGIN IMMEDIATE` takes the write lock up front,
/// waiting up to the busy timeout for another writer. A deferred `BEGIN` that reads first
/// would fail at its first write with `SQLITE_BUSY` ("cannot promote read transaction")
/// whenever another connection committed in between, and the busy timeout cannot help
/// there: every transaction that writes goes through here.
///
/// # Errors
/// [`DbError`] (the lock was not free within the busy timeout).
pub fn write_transaction(conn: &mut Connection) -> Result<Transaction<'_>, DbError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Now, as stored in `created_at`/`updated_at` (UTC, RFC 3339 with milliseconds).
pub fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_set_user_version() {
        let dir = test_services::TempDir::new("db");
        let path = dir.path().join("nested/dir/t.sqlite3");
        let db = Db::open(&path).unwrap();
        let (version, mode): (usize, String) = db
            .call(|c| {
                Ok((
                    c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        assert_eq!(mode, "wal");
        drop(db);
        // Reopening applies nothing and keeps data.
        let db = Db::open(&path).unwrap();
        db.ping().await.unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = test_services::TempDir::new("db");
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        assert!(matches!(Db::open(&path), Err(DbError::TooNew { .. })));
    }
}
