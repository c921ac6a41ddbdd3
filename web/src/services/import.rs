//! The CSV import (`POST /emails/import_csv`): decode and plan the file (see
//! [`crate::domain::csv_import`] for the rules), then store every good row in one
//! transaction and report the rest by line number.

use crate::domain::address::Invalid;
use crate::domain::csv_import::{self, ImportError};
use crate::storage::addresses;
use crate::storage::db::{Db, DbError};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Rows stored.
    pub imported: usize,
    /// `(line, email)` of rows skipped as duplicates (in the file or already stored).
    pub duplicates: Vec<(u64, String)>,
    /// `(line, reason)` of rows refused.
    pub invalid: Vec<(u64, Invalid)>,
}

/// Imports an uploaded file.
///
/// # Errors
/// Database errors; `Ok(Err(_))` when the file as a whole is refused (nothing stored).
pub async fn run(db: &Db, bytes: Vec<u8>) -> Result<Result<Report, ImportError>, DbError> {
    let size = bytes.len();
    let started = std::time::Instant::now();
    let outcome = db
        .call(move |conn| {
            // Decode and validate everything before the transaction, so a refused file never
            // holds the write lock; then insert all rows in one transaction.
            let (text, _) = match csv_import::decode(&bytes) {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            };
            let plan = match csv_import::plan(&text) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let rows: Vec<_> = plan.rows.iter().map(|r| r.address.clone()).collect();
            let inserted = addresses::add_many(conn, &rows)?;
            let mut duplicates: Vec<(u64, String)> = plan.duplicates.clone();
            duplicates.extend(inserted.duplicates.iter().map(|&i| {
                let row = &plan.rows[i];
                (row.line, row.address.email().to_owned())
            }));
            duplicates.sort_unstable();
            Ok(Ok(Report {
                imported: inserted.created,
                duplicates,
                invalid: plan.invalid,
            }))
        })
        .await?;
    match &outcome {
        Ok(report) => tracing::info!(
            bytes = size,
            imported = report.imported,
            duplicates = report.duplicates.len(),
            invalid = report.invalid.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "csv imported"
        ),
        Err(e) => tracing::info!(bytes = size, error = %e, "csv refused"),
    }
    Ok(outcome)
}
