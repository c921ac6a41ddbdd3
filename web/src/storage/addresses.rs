//! The `emails` table: list (keyset pages, search), add, delete, bulk insert, random pick.
//!
//! Plain functions over a `&Connection`, run inside [`crate::storage::db::Db::call`].

use crate::domain::address::NewAddress;
use crate::storage::db::{DbError, now_timestamp, write_transaction};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Rows per page of the address list.
pub const PER_PAGE: usize = 50;

/// One stored address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// `emails.id`.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The address.
    pub email: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// Where a page starts. Pages go newest first; cursors are ids, so a page costs one index
/// range scan however deep it is (no OFFSET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest rows.
    First,
    /// Rows older than this id.
    After(i64),
    /// Rows newer than this id (the "previous" link).
    Before(i64),
}

/// One page of the list.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The rows, newest first.
    pub rows: Vec<Address>,
    /// The id for a "next" link, if older rows exist.
    pub next: Option<i64>,
    /// The id for a "previous" link, if newer rows exist.
    pub prev: Option<i64>,
    /// Rows matching the search (all rows without one).
    pub matching: i64,
}

/// Result of adding one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored with this id.
    Created(i64),
    /// The email is already registered (case-insensitively).
    Duplicate,
}

/// Adds one address.
///
/// # Errors
/// [`DbError`].
pub fn add(conn: &Connection, address: &NewAddress) -> Result<Added, DbError> {
    let now = now_timestamp();
    let changed = conn.execute(
        "INSERT INTO emails (email, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (email) DO NOTHING",
        params![address.email(), address.name(), now],
    )?;
    Ok(if changed == 1 {
        Added::Created(conn.last_insert_rowid())
    } else {
        Added::Duplicate
    })
}

/// Deletes one address; `false` if it did not exist.
///
/// # Errors
/// [`DbError`].
pub fn delete(conn: &Connection, id: i64) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM emails WHERE id = ?1", [id])? == 1)
}

/// Number of stored addresses.
///
/// # Errors
/// [`DbError`].
pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM emails", [], |r| r.get(0))?)
}

/// One page, optionally filtered by a substring of name or email (case-insensitive for
/// ASCII, as SQLite's LIKE).
///
/// # Errors
/// [`DbError`].
pub fn page(conn: &Connection, search: &str, cursor: Cursor) -> Result<Page, DbError> {
    let pattern = like_pattern(search.trim());
    let filter = "(?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\')";
    let (cmp, order, bound) = match cursor {
        Cursor::First => ("1", "DESC", 0),
        Cursor::After(id) => ("id < ?2", "DESC", id),
        Cursor::Before(id) => ("id > ?2", "ASC", id),
    };
    // One extra row tells whether another page exists in that direction. (`?2` may be
    // unused; SQLite counts parameters up to the highest index, so binding it is fine.)
    let sql = format!(
        "SELECT id, name, email, created_at FROM emails
         WHERE {filter} AND {cmp}
         ORDER BY id {order} LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<Address> = stmt
        .query_map(params![pattern, bound, PER_PAGE as i64 + 1], |r| {
            Ok(Address {
                id: r.get(0)?,
                name: r.get(1)?,
                email: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > PER_PAGE;
    rows.truncate(PER_PAGE);
    if matches!(cursor, Cursor::Before(_)) {
        rows.reverse();
    }
    let first = rows.first().map(|a| a.id);
    let last = rows.last().map(|a| a.id);
    let (next, prev) = match cursor {
        Cursor::First => (last.filter(|_| more), None),
        Cursor::After(_) => (last.filter(|_| more), first),
        Cursor::Before(_) => (last, first.filter(|_| more)),
    };
    // "previous"/"next" links must not point at empty pages: check the neighbours exist.
    let next = next.filter(|id| exists(conn, &pattern, "id < ?2", *id).unwrap_or(false));
    let prev = prev.filter(|id| exists(conn, &pattern, "id > ?2", *id).unwrap_or(false));
    let matching = if pattern.is_none() {
        count(conn)?
    } else {
        conn.prepare_cached(&format!("SELECT COUNT(*) FROM emails WHERE {filter}"))?
            .query_row([&pattern], |r| r.get(0))?
    };
    Ok(Page {
        rows,
        next,
        prev,
        matching,
    })
}

fn exists(
    conn: &Connection,
    pattern: &Option<String>,
    cmp: &str,
    id: i64,
) -> Result<bool, DbError> {
    let sql = format!(
        "SELECT 1 FROM emails WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\') AND {cmp} LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![pattern, id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// `%term%` with LIKE's wildcards escaped, or `None` for no filter.
fn like_pattern(term: &str) -> Option<String> {
    if term.is_empty() {
        return None;
    }
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    Some(p)
}

/// Outcome of inserting many rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Rows stored.
    pub created: usize,
    /// Indexes (into the input) of rows whose email was already stored.
    pub duplicates: Vec<usize>,
}

/// Inserts all rows in one transaction with one prepared statement (100,000 rows take about
/// a second); rows whose email exists are skipped and reported. All or nothing on error.
///
/// # Errors
/// [`DbError`]; nothing is stored then.
pub fn add_many(conn: &mut Connection, rows: &[NewAddress]) -> Result<Inserted, DbError> {
    let now = now_timestamp();
    let tx = write_transaction(conn)?;
    let mut out = Inserted::default();
    {
        let mut stmt = tx.prepare(
            "INSERT INTO emails (email, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (email) DO NOTHING",
        )?;
        for (i, row) in rows.iter().enumerate() {
            if stmt.execute(params![row.email(), row.name(), now])? == 1 {
                out.created += 1;
            } else {
                out.duplicates.push(i);
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Adds `n` new `@example.test` addresses, unique thanks to a random batch tag; returns how
/// many were stored.
///
/// # Errors
/// [`DbError`].
pub fn generate(conn: &mut Connection, n: usize) -> Result<usize, DbError> {
    let tag: u32 = rand::random::<u32>() & 0x00ff_ffff;
    let rows: Vec<NewAddress> = (1..=n)
        .filter_map(|i| {
            NewAddress::parse(
                &format!("テストユーザー {tag:06x}-{i}"),
                &format!("user-{tag:06x}-{i}@example.test"),
            )
            .ok()
        })
        .collect();
    Ok(add_many(conn, &rows)?.created)
}

/// A recipient picked for a bulk send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `emails.id`.
    pub id: i64,
    /// The address.
    pub email: String,
    /// The name.
    pub name: String,
}

/// Reads `n` distinct addresses in random order and hands them to `each` in chunks of
/// `chunk` as it goes, so a bulk send never holds all of its recipients (or jobs) at once.
/// Stops early when `each` returns `false`. Returns how many rows were handed over.
///
/// `ORDER BY RANDOM() LIMIT n` keeps only the best `n` while scanning, in SQLite's own
/// bounded sorter (about 30 ms for 10,000 of 100,000 rows). The statement is one read
/// snapshot: writers go on meanwhile (WAL), and the send sees the table as it was.
///
/// # Errors
/// [`DbError`].
pub fn for_each_random_chunk(
    conn: &Connection,
    n: usize,
    chunk: usize,
    mut each: impl FnMut(Vec<Recipient>) -> bool,
) -> Result<usize, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, email, name FROM emails ORDER BY RANDOM() LIMIT ?1")?;
    let mut rows = stmt.query([n as i64])?;
    let mut batch = Vec::with_capacity(chunk);
    let mut handed = 0;
    while let Some(r) = rows.next()? {
        batch.push(Recipient {
            id: r.get(0)?,
            email: r.get(1)?,
            name: r.get(2)?,
        });
        if batch.len() == chunk {
            handed += batch.len();
            if !each(std::mem::replace(&mut batch, Vec::with_capacity(chunk))) {
                return Ok(handed - chunk);
            }
        }
    }
    if !batch.is_empty() {
        let len = batch.len();
        if each(batch) {
            handed += len;
        }
    }
    Ok(handed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::Db;

    fn seeded(n: usize) -> (test_services::TempDir, Connection) {
        let dir = test_services::TempDir::new("addresses");
        let path = dir.path().join("t.sqlite3");
        drop(Db::open(&path).unwrap());
        let mut conn = Connection::open(&path).unwrap();
        let rows: Vec<NewAddress> = (1..=n)
            .map(|i| NewAddress::parse(&format!("User {i}"), &format!("u{i}@x.test")).unwrap())
            .collect();
        add_many(&mut conn, &rows).unwrap();
        (dir, conn)
    }

    #[test]
    fn pages_walk_forward_and_back() {
        let (_dir, conn) = seeded(120);
        let p1 = page(&conn, "", Cursor::First).unwrap();
        assert_eq!(p1.rows.len(), 50);
        assert_eq!(p1.rows[0].email, "u120@x.test");
        assert_eq!(p1.prev, None);
        assert_eq!(p1.matching, 120);
        let p2 = page(&conn, "", Cursor::After(p1.next.unwrap())).unwrap();
        assert_eq!(p2.rows[0].email, "u70@x.test");
        let p3 = page(&conn, "", Cursor::After(p2.next.unwrap())).unwrap();
        assert_eq!(p3.rows.len(), 20);
        assert_eq!(p3.next, None);
        let back = page(&conn, "", Cursor::Before(p3.prev.unwrap())).unwrap();
        assert_eq!(back.rows, p2.rows);
        let back = page(&conn, "", Cursor::Before(back.prev.unwrap())).unwrap();
        assert_eq!(back.rows, p1.rows);
        assert_eq!(back.prev, None);
    }

    #[test]
    fn search_matches_name_or_email_and_escapes_wildcards() {
        let (_dir, conn) = seeded(120);
        let p = page(&conn, "User 11", Cursor::First).unwrap();
        let emails: Vec<&str> = p.rows.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(emails.len(), 11, "{emails:?}"); // 11, 110..=119
        assert_eq!(p.matching, 11);
        assert_eq!(page(&conn, "u7@", Cursor::First).unwrap().rows.len(), 1);
        assert_eq!(page(&conn, "%", Cursor::First).unwrap().rows.len(), 0);
        assert_eq!(page(&conn, "_", Cursor::First).unwrap().rows.len(), 0);
    }

    #[test]
    fn duplicates_are_case_insensitive() {
        let (_dir, conn) = seeded(1);
        let a = NewAddress::parse("x", "U1@X.TEST").unwrap();
        assert_eq!(add(&conn, &a).unwrap(), Added::Duplicate);
    }

    #[test]
    fn random_chunks_are_distinct_and_stop_when_asked() {
        let (_dir, conn) = seeded(100);
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        let handed = for_each_random_chunk(&conn, 95, 10, |c| {
            sizes.push(c.len());
            ids.extend(c.iter().map(|r| r.id));
            true
        })
        .unwrap();
        assert_eq!(handed, 95);
        assert_eq!(sizes, [vec![10; 9], vec![5]].concat());
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 95);
        let mut calls = 0;
        let handed = for_each_random_chunk(&conn, 100, 10, |_| {
            calls += 1;
            calls < 3
        })
        .unwrap();
        assert_eq!((calls, handed), (3, 20));
    }
}
