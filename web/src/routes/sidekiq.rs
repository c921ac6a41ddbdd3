//! `/sidekiq` on mail-web's own port: a redirect to the admin's own origin (see
//! [`crate::http::proxy`] for why it is not served here), or a page saying how to start
//! Sidekiq Web when `SIDEKIQ_WEB_URL` is not set.

use crate::http::error::AppError;
use crate::http::proxy;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub(super) async fn redirect(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if state.proxy.is_none() {
        return Ok(proxy::not_configured());
    }
    if method != Method::GET && method != Method::HEAD {
        // The admin's forms post to its own origin; nothing may act on it from here.
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let path = uri.path_and_query().map_or("/sidekiq", |p| p.as_str());
    let target = state
        .admin
        .url_for(&headers, path)
        .ok_or_else(|| AppError::BadRequest("no usable Host header".into()))?;
    let location = HeaderValue::from_str(&target)
        .map_err(|_| AppError::BadRequest("no usable Host header".into()))?;
    Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response())
}

/// The admin's `/sidekiq` as links on mail-web's pages reach it: on its own origin (the
/// redirect's target), or mail-web's `/sidekiq` (which says how to set it up) when there is
/// no admin or no usable `Host`.
pub(super) fn admin_url(state: &AppState, headers: &HeaderMap) -> String {
    state
        .proxy
        .as_ref()
        .and_then(|_| state.admin.url_for(headers, "/sidekiq"))
        .unwrap_or_else(|| "/sidekiq".into())
}

/// `/` on the admin origin: the dashboard.
pub(super) async fn admin_home() -> Response {
    (StatusCode::FOUND, [(LOCATION, "/sidekiq/")]).into_response()
}
