//! Rails-style flash: a notice or alert (plus detail lines) carried across one redirect in a
//! cookie, shown once by the next page and then cleared.
//!
//! The cookie holds base64url JSON. It is not signed: whoever can set our cookies can only
//! change the message they see themselves, and it is always rendered escaped.

use crate::http::cookies;
use axum::extract::OptionalFromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Cookie name.
pub const COOKIE: &str = "_mail_web_flash";
/// Browsers keep cookies up to 4 KiB; stay well below with the encoded value.
const MAX_ENCODED: usize = 3_000;

/// What the next page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// Success message.
    #[serde(default)]
    pub notice: Option<String>,
    /// Error message.
    #[serde(default)]
    pub alert: Option<String>,
    /// Lines under the message (e.g. import problems by line number).
    #[serde(default)]
    pub details: Vec<String>,
}

impl Flash {
    /// A success message.
    pub fn notice(msg: impl Into<String>) -> Self {
        Flash {
            notice: Some(msg.into()),
            ..Flash::default()
        }
    }

    /// An error message.
    pub fn alert(msg: impl Into<String>) -> Self {
        Flash {
            alert: Some(msg.into()),
            ..Flash::default()
        }
    }

    /// Adds detail lines.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Reads the flash cookie of a request (an unreadable one reads as none).
    pub fn from_headers(headers: &HeaderMap) -> Option<Flash> {
        let raw = cookies::get(headers, COOKIE)?;
        let json = URL_SAFE_NO_PAD.decode(raw).ok()?;
        serde_json::from_slice(&json).ok()
    }

    fn encode(&self) -> String {
        let mut flash = self.clone();
        loop {
            let json = serde_json::to_vec(&flash).unwrap_or_default();
            let encoded = URL_SAFE_NO_PAD.encode(json);
            if encoded.len() <= MAX_ENCODED || flash.details.is_empty() {
                return encoded;
            }
            // Too long for a cookie: drop detail lines from the end (callers already cap them).
            flash.details.pop();
        }
    }
}

/// `Option<Flash>` as an extractor: the flash the previous redirect left, if any.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Flash {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(Flash::from_headers(&parts.headers))
    }
}

/// A `303 See Other` to `to` that sets the flash (Rails' `redirect_to ..., notice:`).
pub struct Redirect {
    to: String,
    flash: Option<Flash>,
}

impl Redirect {
    /// Redirect with a flash.
    pub fn with_flash(to: impl Into<String>, flash: Flash) -> Self {
        Redirect {
            to: to.into(),
            flash: Some(flash),
        }
    }

    /// Plain redirect.
    pub fn to(to: impl Into<String>) -> Self {
        Redirect {
            to: to.into(),
            flash: None,
        }
    }
}

/// Where a form's `return_to` field may send the user back to after its redirect: the
/// lesson guide, else the main page (never a URL from the request: no open redirect).
pub fn back_to(return_to: &str) -> &'static str {
    match return_to {
        "/lesson" => "/lesson",
        _ => "/",
    }
}

impl IntoResponse for Redirect {
    fn into_response(self) -> Response {
        let mut res = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&self.to) {
            res.headers_mut().insert(LOCATION, v);
        }
        if let Some(flash) = self.flash
            && let Ok(v) = HeaderValue::from_str(&cookies::set(COOKIE, &flash.encode()))
        {
            res.headers_mut().append(SET_COOKIE, v);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_return_only_to_known_pages() {
        assert_eq!(back_to("/lesson"), "/lesson");
        assert_eq!(back_to(""), "/");
        assert_eq!(back_to("https://evil.example/"), "/");
        assert_eq!(back_to("//evil.example"), "/");
    }

    #[test]
    fn round_trips_through_the_cookie() {
        let f = Flash::alert("失敗 <b>").with_details(vec!["3行目: x".into()]);
        let res = Redirect::with_flash("/", f.clone()).into_response();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let set = res.headers()[SET_COOKIE].to_str().unwrap();
        let value = set.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(value).unwrap());
        assert_eq!(Flash::from_headers(&h), Some(f));
    }

    #[test]
    fn long_details_are_cut_to_fit_a_cookie() {
        let f = Flash::alert("x").with_details(vec!["行".repeat(100); 40]);
        assert!(f.encode().len() <= MAX_ENCODED);
    }
}
