//! `AppError`: what a handler can fail with, and the response each failure becomes.
//!
//! Responses never carry internals: the client sees a short bilingual message, while the cause
//! chain of an unexpected error is attached to the response as [`LoggedError`] and logged once
//! by the request-metrics middleware, inside the request's span.

use crate::storage::db::DbError;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
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
    /// Our fault: database, Redis, template.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Unexpected(anyhow::Error::new(e).context("database"))
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
        let (status, ja, en) = match &self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                crate::i18n::JA.error_not_found,
                crate::i18n::EN.error_not_found,
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                crate::i18n::JA.error_forbidden,
                crate::i18n::EN.error_forbidden,
            ),
            AppError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                crate::i18n::JA.error_bad_request,
                crate::i18n::EN.error_bad_request,
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::i18n::JA.error_too_large,
                crate::i18n::EN.error_too_large,
            ),
            AppError::Unexpected(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::i18n::JA.error_unexpected,
                crate::i18n::EN.error_unexpected,
            ),
        };
        let body = format!(
            "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{code}</title></head>\
             <body style=\"font-family:sans-serif;padding:2em\"><h1>{code}</h1><p>{ja}</p><p>{en}</p>\
             <p><a href=\"/\">← /</a></p></body></html>",
            code = status.as_u16()
        );
        let mut res = (status, Html(body)).into_response();
        if let AppError::Unexpected(e) = &self {
            res.extensions_mut()
                .insert(LoggedError(Arc::new(format!("{e:#}"))));
        }
        res
    }
}
