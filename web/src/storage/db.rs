//! SQLite access: opening with the right pragmas, migrations, and running queries off the
//! async runtime.
//!
//! rusqlite is blocking, so every query runs in [`Db::call`] on tokio's blocking pool with a
//! connection taken from a small idle list (WAL lets readers run beside the one writer).
//!
//! The file is watched, because SQLite itself does not notice it going away: a pooled
//! connection keeps writing a deleted file (acknowledged, then gone at the next start) and a
//! new connection would create an empty one. So every call first checks that the path still
//! names the file that was migrated (same device and inode), new connections never create a
//! file and must find this database's instance id in it, and a file made read-only (its
//! mode) is used through read-only connections only, so writes fail the same way whichever
//! connection a request gets. Each such failure is a [`Trouble`] with a clear message for
//! the user and a reason for `/health/ready`.

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use std::os::unix::fs::MetadataExt;
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
    (
        "0003_create_instance",
        include_str!("../../../migrations/0003_create_instance.sql"),
    ),
    (
        "0004_mail_jobs_variant",
        include_str!("../../../migrations/0004_mail_jobs_variant.sql"),
    ),
    (
        "0005_mail_jobs_cancelled",
        include_str!("../../../migrations/0005_mail_jobs_cancelled.sql"),
    ),
];

/// Idle connections kept for reuse; more are opened on demand under load.
const MAX_IDLE: usize = 4;
/// How long a writer waits for another (imports hold the write lock for about a second).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The path no longer names the database this process migrated.
    #[error("{path}: {why}")]
    Lost {
        /// The configured path.
        path: PathBuf,
        /// Deleted, replaced, another database.
        why: &'static str,
    },
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// A database failure the user can be told about plainly (a 503 with its own message rather
/// than a 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The file was deleted or replaced while running: nothing is written until it is back
    /// or the app restarts (and migrates a new one).
    Lost,
    /// The file (or its directory) cannot be written.
    ReadOnly,
    /// Another writer held the lock for longer than the busy timeout.
    Busy,
    /// The disk is full.
    Full,
    /// The file is not (or no longer) a SQLite database.
    Corrupt,
}

impl DbError {
    /// What kind of trouble this is, when it is one the user can be told about.
    pub fn trouble(&self) -> Option<Trouble> {
        match self {
            DbError::Lost { .. } => Some(Trouble::Lost),
            DbError::Sqlite(e) => match e.sqlite_error_code()? {
                ErrorCode::ReadOnly => Some(Trouble::ReadOnly),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Trouble::Busy),
                ErrorCode::DiskFull => Some(Trouble::Full),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Some(Trouble::Corrupt),
                ErrorCode::CannotOpen | ErrorCode::SystemIoFailure => Some(Trouble::Lost),
                _ => None,
            },
            _ => None,
        }
    }
}

impl DbError {
    /// A short reason for `/health/ready`, without the path or SQL.
    pub fn reason(&self) -> &'static str {
        if let DbError::Lost { why, .. } = self {
            return why;
        }
        match self.trouble() {
            Some(Trouble::Lost) => "the database file cannot be opened",
            Some(Trouble::ReadOnly) => "the database file is read-only",
            Some(Trouble::Busy) => "the database is locked by a long write",
            Some(Trouble::Full) => "the disk is full",
            Some(Trouble::Corrupt) => "the file is not a SQLite database (or is damaged)",
            None => "the database cannot be used",
        }
    }
}

/// Who the database is: drawn once at its first migration (`instance` table).
#[derive(Clone)]
pub struct Instance {
    /// 32 hex characters; part of every progress key of this database's bulk sends.
    pub id: String,
    /// 32 random bytes that sign the session cookie.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A cheap-to-clone handle on the database file.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `(device, inode)` of the file that was migrated.
    file: (u64, u64),
    instance: Instance,
    idle: Mutex<Vec<Connection>>,
}

/// What a look at the path found.
enum FileState {
    Writable,
    ReadOnly,
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
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let (id, secret): (String, Vec<u8>) =
            conn.query_row("SELECT id, secret FROM instance", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let secret = <[u8; 32]>::try_from(secret.as_slice()).map_err(|_| DbError::Lost {
            path: path.to_path_buf(),
            why: "the instance secret is not 32 bytes",
        })?;
        let instance = Instance { id, secret };
        let meta = std::fs::metadata(path).map_err(|_| DbError::Lost {
            path: path.to_path_buf(),
            why: "missing right after opening",
        })?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                file: (meta.dev(), meta.ino()),
                instance,
                idle: Mutex::new(vec![conn]),
            }),
        })
    }

    /// This database's instance id and session secret.
    pub fn instance(&self) -> &Instance {
        &self.inner.instance
    }

    /// Runs `f` with a connection on the blocking pool, inside the caller's tracing span.
    ///
    /// # Errors
    /// Whatever `f` returns, [`DbError::Lost`] when the file is no longer the one migrated,
    /// or [`DbError::Task`].
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| match inner.check_file()? {
                FileState::Writable => {
                    let taken = inner.idle.lock().ok().and_then(|mut idle| idle.pop());
                    let mut conn = match taken {
                        Some(c) => c,
                        None => inner.connect(OpenFlags::SQLITE_OPEN_READ_WRITE)?,
                    };
                    let result = f(&mut conn);
                    // A connection left inside a transaction (a panic in `f` cannot get
                    // here, an early `?` drops the Transaction which rolls back) is safe to
                    // reuse.
                    if let Ok(mut idle) = inner.idle.lock()
                        && idle.len() < MAX_IDLE
                    {
                        idle.push(conn);
                    }
                    result
                }
                FileState::ReadOnly => {
                    // Pooled connections were opened for writing and would still write
                    // (as root, or through an already open descriptor): use a read-only
                    // one, so every write fails alike and every read works.
                    if let Ok(mut idle) = inner.idle.lock() {
                        idle.clear();
                    }
                    let mut conn = inner.connect(OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                    f(&mut conn)
                }
            })
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// The readiness check: the path still names the migrated file, it is writable, and a
    /// fresh connection (no create) finds this database's instance id in it, so a deleted,
    /// replaced, read-only or corrupted file is noticed. (`SELECT 1` on a pooled
    /// connection would succeed without touching the file at all.)
    ///
    /// # Errors
    /// [`DbError`]; a read-only file is a `SQLITE_READONLY` error.
    pub async fn ping(&self) -> Result<(), DbError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if matches!(inner.check_file()?, FileState::ReadOnly) {
                return Err(read_only());
            }
            let conn = inner.connect(OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            if conn.is_readonly(rusqlite::MAIN_DB)? {
                return Err(read_only());
            }
            Ok(())
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

impl Inner {
    /// Whether the path still names the migrated file, and whether it may be written.
    fn check_file(&self) -> Result<FileState, DbError> {
        let lost = |why| DbError::Lost {
            path: self.path.clone(),
            why,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(lost("the database file was deleted"));
            }
            Err(_) => return Err(lost("the database file cannot be read")),
        };
        if (meta.dev(), meta.ino()) != self.file {
            return Err(lost("the database file was replaced by another file"));
        }
        Ok(if meta.permissions().readonly() {
            FileState::ReadOnly
        } else {
            FileState::Writable
        })
    }

    /// A new connection to the existing file (never creating one) that holds this
    /// database.
    fn connect(&self, mode: OpenFlags) -> Result<Connection, DbError> {
        let conn = Connection::open_with_flags(&self.path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        configure(&conn)?;
        let id: String = conn.query_row("SELECT id FROM instance", [], |r| r.get(0))?;
        if id != self.instance.id {
            return Err(DbError::Lost {
                path: self.path.clone(),
                why: "the file holds another database (its instance id differs)",
            });
        }
        Ok(conn)
    }
}

/// `SQLITE_READONLY`, as SQLite reports a write to a read-only database.
fn read_only() -> DbError {
    DbError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
        Some("the database file is read-only".into()),
    ))
}

fn configure(conn: &Connection) -> Result<(), DbError> {
    // Writers wait for each other instead of failing with SQLITE_BUSY.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        // WAL mode is a property of the file, already set; a read-only connection can
        // neither set it nor needs to.
        return Ok(());
    }
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(())
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
