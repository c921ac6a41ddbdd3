//! HTTP routes, one module per area, and the routers that wire them with the middleware
//! stack (trace span → metrics → basic auth → timeout → body limit → handler): [`router`]
//! for mail-web's port, [`admin_router`] for the Sidekiq admin's own origin.

mod addresses;
mod bulk_send;
mod favicon;
mod health;
mod import;
mod lang;
mod lesson;
mod live;
mod sidekiq;

use crate::http::error::AppError;
use crate::http::{auth as basic_auth, metrics as http_metrics, proxy as sidekiq_proxy};
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Largest urlencoded form body (every form but the CSV upload is a few hundred bytes).
pub const FORM_BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take (a 100,000-row import takes about a second).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Room for the multipart framing and the token around the CSV file itself.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The whole application as a router over `state`.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.config.max_upload_bytes + MULTIPART_OVERHEAD;
    let routes = Router::new()
        .route("/", get(addresses::index))
        .route("/emails", get(addresses::index).post(addresses::create))
        .route(
            "/emails/{id}",
            post(addresses::destroy_form).delete(addresses::destroy),
        )
        .route(
            "/emails/import_csv",
            post(import::import_csv).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/emails/generate", post(addresses::generate))
        .route("/emails/bulk_send", post(bulk_send::bulk_send))
        .route("/progress", get(live::progress))
        .route("/mail_jobs.json", get(live::mail_jobs_json))
        .route("/lang/{code}", get(lang::switch))
        .route("/lesson", get(lesson::page))
        .route("/lesson/steps", get(lesson::steps))
        .route("/lesson/start_over", post(lesson::start_over))
        .route("/favicon.svg", get(favicon::svg))
        .route("/favicon.ico", get(favicon::ico))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/sidekiq", any(sidekiq::redirect))
        // `{*rest}` needs at least one character, so the dashboard's `/sidekiq/` is its own route.
        .route("/sidekiq/", any(sidekiq::redirect))
        .route("/sidekiq/{*rest}", any(sidekiq::redirect))
        .fallback(|| async { AppError::NotFound });
    with_middleware(routes, state)
}

/// The Sidekiq admin's own origin: `/sidekiq/…` proxied to `SIDEKIQ_WEB_URL`, `/` to the
/// dashboard, nothing of mail-web.
pub fn admin_router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(sidekiq::admin_home))
        .route("/sidekiq", any(sidekiq_proxy::handle))
        .route("/sidekiq/", any(sidekiq_proxy::handle))
        .route("/sidekiq/{*rest}", any(sidekiq_proxy::handle))
        .fallback(|| async { AppError::NotFound });
    with_middleware(routes, state)
}

fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        // No request may hold a connection forever (graceful shutdown waits for them).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(from_fn_with_state(state.clone(), basic_auth::require))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            http_metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The route template, not the raw URI: bounded values, no search terms.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::info_span!("http_request", method = %req.method(), route)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}
