//! `AppError`: what a handler can fail with, and the response each failure becomes.
//!
//! Responses never carry internals: the client sees a short bilingual message, while the cause
//! chain of an unexpected error is attached to the response as [`LoggedError`] and logged once
//! by the request-metrics middleware, inside the request's span.

use crate::i18n::{EN, JA, Texts};
use crate::storage::db::{DbError, Trouble};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use service_runtime::html::escape;
use std::sync::Arc;

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such page or record.
    #[error("not found")]
    NotFound,
    /// Missing or wrong CSRF token.
    #[error("forbidden: bad or missing authenticity token")]
    Forbidden,
    /// The request cannot be understood.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The database cannot do what was asked, for a reason the user can be told.
    #[error("database unavailable: {1}")]
    Database(Trouble, DbError),
    /// Our fault: database, Redis, template.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e.trouble() {
            Some(trouble) => AppError::Database(trouble, e),
            None => AppError::Unexpected(anyhow::Error::new(e).context("database")),
        }
    }
}

/// The message for a database trouble.
pub fn trouble_message(t: &Texts, trouble: Trouble) -> &'static str {
    match trouble {
        Trouble::Lost => t.db_lost,
        Trouble::ReadOnly => t.db_read_only,
        Trouble::Busy => t.db_busy,
        Trouble::Full => t.db_full,
        Trouble::Corrupt => t.db_corrupt,
    }
}

impl From<minijinja::Error> for AppError {
    fn from(e: minijinja::Error) -> Self {
        AppError::Unexpected(anyhow::Error::new(e).context("template"))
    }
}

/// The cause chain of an unexpected error, for the logging middleware.
#[derive(Debug, Clone)]
pub struct LoggedError(pub Arc<String>);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let text = |f: fn(&Texts) -> &'static str| (f(&JA), f(&EN));
        let (status, (ja, en)) = match &self {
            AppError::NotFound => (StatusCode::NOT_FOUND, text(|t| t.error_not_found)),
            AppError::Forbidden => (StatusCode::FORBIDDEN, text(|t| t.error_forbidden)),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, text(|t| t.error_bad_request)),
            AppError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, text(|t| t.error_too_large))
            }
            AppError::Database(trouble, _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                (
                    trouble_message(&JA, *trouble),
                    trouble_message(&EN, *trouble),
                ),
            ),
            AppError::Unexpected(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                text(|t| t.error_unexpected),
            ),
        };
        let mut res = (status, Html(error_page(status, ja, en))).into_response();
        match &self {
            AppError::Unexpected(e) => {
                res.extensions_mut()
                    .insert(LoggedError(Arc::new(format!("{e:#}"))));
            }
            AppError::Database(_, e) => {
                res.extensions_mut()
                    .insert(LoggedError(Arc::new(format!("database: {e}"))));
            }
            _ => {}
        }
        res
    }
}

/// A small page with the message in both languages (the request's language may be what
/// failed to be read) and a link home.
pub fn error_page(status: StatusCode, ja: &str, en: &str) -> String {
    let (ja, en) = (escape(ja), escape(en));
    format!(
        "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{code}</title></head>\
         <body style=\"font-family:sans-serif;padding:2em\"><h1>{code}</h1><p>{ja}</p><p>{en}</p>\
         <p><a href=\"/\">← /</a></p></body></html>",
        code = status.as_u16()
    )
}
