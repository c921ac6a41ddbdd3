//! `GET /progress` (the HTML fragment the page polls) and `GET /mail_jobs.json`.

use crate::domain::mail_job::MailJob;
use crate::http::error::AppError;
use crate::i18n::Lang;
use crate::services::live::{Live, LiveSources};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::CACHE_CONTROL;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use serde::Deserialize;
use std::sync::Arc;

/// Most bulk sends one JSON request returns.
const MAX_JSON_LIMIT: usize = 100;

pub(super) async fn progress(
    State(state): State<AppState>,
    State(live): State<LiveSources>,
    State(templates): State<Arc<Environment<'static>>>,
    headers: HeaderMap,
    lang: Lang,
) -> Result<Response, AppError> {
    let live: Live = live.snapshot().await?;
    let admin_url = super::sidekiq::admin_url(&state, &headers);
    let html = crate::http::templates::render(
        &templates,
        "pages/_live.html",
        context! { lang => lang.code(), live, admin_url },
    )?;
    Ok(([(CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct JsonQuery {
    limit: Option<usize>,
}

pub(super) async fn mail_jobs_json(
    State(live): State<LiveSources>,
    Query(q): Query<JsonQuery>,
) -> Result<Response, AppError> {
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_JSON_LIMIT);
    let (jobs, _redis_ok): (Vec<MailJob>, bool) = live.mail_jobs(limit).await?;
    Ok(([(CACHE_CONTROL, "no-store")], Json(jobs)).into_response())
}
