//! `POST /emails/import_csv`: multipart field `csv_file`, all rows in one transaction, and a
//! report by line number (see [`crate::domain::csv_import`] for the rules and
//! [`crate::services::import`] for the work).

use crate::domain::csv_import::{ImportError, MAX_LISTED};
use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash::{Flash, Redirect};
use crate::i18n::{Arg, Lang, Texts, fill};
use crate::services::import::{self, Report};
use crate::state::AppState;
use axum::extract::{Multipart, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};

enum Upload {
    File(Vec<u8>),
    TooLarge,
    Missing,
}

pub(super) async fn import_csv(
    State(state): State<AppState>,
    csrf: CsrfToken,
    lang: Lang,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Redirect, AppError> {
    let t = lang.texts();
    let limit = state.config.max_upload_bytes;
    // Refuse an announced oversize body before reading any of it.
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit + 64 * 1024) {
        // The token cannot be checked without reading the body; refusing is safe either way.
        return Ok(refused(t, &ImportError::TooLarge { limit }));
    }
    let mut token = String::new();
    let mut upload = Upload::Missing;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Ok(refused(t, &ImportError::TooLarge { limit }));
            }
            Err(e) => return Err(AppError::BadRequest(e.body_text())),
        };
        match field.name() {
            Some("authenticity_token") => {
                token = field
                    .text()
                    .await
                    .map_err(|e| AppError::BadRequest(e.body_text()))?;
            }
            Some("csv_file") => {
                upload = read_file(field, limit).await?;
                if matches!(upload, Upload::TooLarge) {
                    // Refused before the token check: nothing is stored either way.
                    return Ok(refused(t, &ImportError::TooLarge { limit }));
                }
            }
            _ => {} // unknown fields (e.g. the submit button) are ignored
        }
    }
    csrf.verify(&token)?;
    let bytes = match upload {
        Upload::File(b) if !b.is_empty() => b,
        _ => {
            return Ok(Redirect::with_flash(
                "/",
                Flash::alert(t.import_choose_file),
            ));
        }
    };
    Ok(match import::run(&state.db, bytes).await? {
        Ok(report) => imported(t, &report),
        Err(e) => refused(t, &e),
    })
}

/// Reads the file field, stopping as soon as it passes `limit` (the body limit would stop
/// it a little later anyway; this gives the clear message).
async fn read_file(
    mut field: axum::extract::multipart::Field<'_>,
    limit: usize,
) -> Result<Upload, AppError> {
    let mut bytes = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > limit {
                    return Ok(Upload::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Upload::File(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Ok(Upload::TooLarge),
            Err(e) => return Err(AppError::BadRequest(e.body_text())),
        }
    }
}

fn imported(t: &Texts, r: &Report) -> Redirect {
    let msg = fill(
        t.flash_imported,
        &[
            ("n", Arg::from(r.imported)),
            ("dup", Arg::from(r.duplicates.len())),
            ("bad", Arg::from(r.invalid.len())),
        ],
    );
    let mut lines: Vec<(u64, String)> = r
        .duplicates
        .iter()
        .map(|(line, email)| {
            let text = fill(
                t.line_duplicate,
                &[
                    ("line", Arg::from(line.to_string())),
                    ("email", Arg::from(email.as_str())),
                ],
            );
            (*line, text)
        })
        .chain(r.invalid.iter().map(|(line, why)| {
            let reason = super::addresses::invalid_message(t, *why);
            (
                *line,
                fill(
                    t.line_invalid,
                    &[
                        ("line", Arg::from(line.to_string())),
                        ("reason", Arg::from(reason)),
                    ],
                ),
            )
        }))
        .collect();
    lines.sort_by_key(|(line, _)| *line);
    let flash = if r.duplicates.is_empty() && r.invalid.is_empty() {
        Flash::notice(msg)
    } else if r.imported == 0 {
        Flash::alert(msg)
    } else {
        Flash::notice(msg)
    };
    Redirect::with_flash(
        "/",
        flash.with_details(listed(t, lines.into_iter().map(|(_, s)| s).collect())),
    )
}

fn refused(t: &Texts, e: &ImportError) -> Redirect {
    let (msg, details) = match e {
        ImportError::Empty => (t.import_choose_file.to_owned(), Vec::new()),
        ImportError::TooLarge { limit } => (
            fill(
                t.import_too_large,
                &[("limit", Arg::from(human_bytes(*limit)))],
            ),
            Vec::new(),
        ),
        ImportError::NotText => (t.import_not_text.to_owned(), Vec::new()),
        ImportError::MissingColumns(cols) => (
            fill(
                t.import_missing_columns,
                &[("cols", Arg::from(cols.join(", ")))],
            ),
            Vec::new(),
        ),
        ImportError::Formula(lines) => (
            t.import_formula.to_owned(),
            lines
                .iter()
                .map(|l| fill(t.line_formula, &[("line", Arg::from(l.to_string()))]))
                .collect(),
        ),
        ImportError::UnterminatedQuote(line) => (
            fill(
                t.import_unterminated_quote,
                &[("line", Arg::from(line.to_string()))],
            ),
            Vec::new(),
        ),
        ImportError::BrokenUtf8(lines) => (
            t.import_broken_utf8.to_owned(),
            lines
                .iter()
                .map(|l| fill(t.line_broken_utf8, &[("line", Arg::from(l.to_string()))]))
                .collect(),
        ),
        ImportError::Malformed(line) => (
            fill(t.import_malformed, &[("line", Arg::from(line.to_string()))]),
            Vec::new(),
        ),
    };
    Redirect::with_flash("/", Flash::alert(msg).with_details(listed(t, details)))
}

/// At most [`MAX_LISTED`] lines, then "and N more".
fn listed(t: &Texts, mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LISTED {
        let more = lines.len() - MAX_LISTED;
        lines.truncate(MAX_LISTED);
        lines.push(fill(t.and_more, &[("n", Arg::from(more))]));
    }
    lines
}

/// `10485760` → `10 MB`.
fn human_bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MB", n / (1024 * 1024))
    } else if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", n.div_ceil(1024))
    }
}
