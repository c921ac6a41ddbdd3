//! The lesson guide: `GET /lesson` (the page), `GET /lesson/steps` (the fragment it polls
//! every second), `POST /lesson/start_over`; the work is [`crate::services::lesson`].

use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash::{Flash, Redirect};
use crate::http::templates;
use crate::i18n::Lang;
use crate::services::lesson::LessonSources;
use crate::state::AppState;
use axum::extract::{Form, FromRef, State};
use axum::http::HeaderMap;
use axum::http::header::CACHE_CONTROL;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
    lang: Lang,
    flash: Option<Flash>,
) -> Result<Response, AppError> {
    let lesson = LessonSources::from_ref(&state).view().await?;
    let nonce = templates::new_nonce();
    let html = templates::render(
        &state.templates,
        "pages/lesson.html",
        context! {
            lang => lang.code(),
            csrf_token => csrf.value(),
            csp_nonce => nonce,
            flash => flash,
            lesson => lesson,
            admin_url => super::sidekiq::admin_url(&state, &headers),
            unleash_url => state.config.unleash_url,
            mail_catcher_url => state.config.mail_catcher_url,
        },
    )?;
    Ok(templates::page(html, &csrf, flash.is_some(), &nonce))
}

pub(super) async fn steps(
    State(state): State<AppState>,
    headers: HeaderMap,
    csrf: CsrfToken,
    lang: Lang,
) -> Result<Response, AppError> {
    let lesson = LessonSources::from_ref(&state).view().await?;
    let html = templates::render(
        &state.templates,
        "pages/_lesson_steps.html",
        context! {
            lang => lang.code(),
            // The steps hold the send buttons: their forms need the page's token.
            csrf_token => csrf.value(),
            lesson => lesson,
            admin_url => super::sidekiq::admin_url(&state, &headers),
        },
    )?;
    Ok(([(CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StartOverForm {
    authenticity_token: String,
}

pub(super) async fn start_over(
    State(lesson): State<LessonSources>,
    csrf: CsrfToken,
    lang: Lang,
    Form(form): Form<StartOverForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    let t = lang.texts();
    Ok(match lesson.start_over().await {
        Ok(()) => {
            tracing::info!("lesson started over");
            Redirect::with_flash("/lesson", Flash::notice(t.lesson_flash_started_over))
        }
        Err(e) => {
            tracing::warn!(error = %e, "lesson start over failed");
            Redirect::with_flash("/lesson", Flash::alert(t.lesson_flash_start_over_failed))
        }
    })
}
