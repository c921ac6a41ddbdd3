//! The app's icon: `GET /favicon.svg`, and `/favicon.ico` (which browsers ask for on their
//! own) sent there.

use crate::http::flash::Redirect;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// The app's icon: an envelope on Sidekiq red, drawn here (no file to ship or cache-bust).
const FAVICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#b1003e"/><rect x="5" y="9" width="22" height="15" rx="2" fill="#fff"/><path d="M5.5 10 16 18l10.5-8" fill="none" stroke="#b1003e" stroke-width="2.2" stroke-linejoin="round"/></svg>"##;

/// `GET /favicon.svg`.
pub(super) async fn svg() -> Response {
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON_SVG,
    )
        .into_response()
}

/// `GET /favicon.ico`, which browsers ask for on their own: the SVG.
pub(super) async fn ico() -> Redirect {
    Redirect::to("/favicon.svg")
}
