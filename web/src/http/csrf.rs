//! Cross-site request forgery protection. A state-changing request must
//! 1. come from our own pages: `Sec-Fetch-Site` (when the browser sends it) is
//!    `same-origin` or `none`, and `Origin` (when sent) is this host — so another site,
//!    another port of this host (the mail catcher, the Sidekiq admin) or a sandboxed page
//!    (`Origin: null`) is refused even when the browser attaches our cookies (cookies
//!    ignore ports);
//! 2. carry the token of its session: every form has a hidden `authenticity_token` (or the
//!    `X-CSRF-Token` header) that must equal the token derived from the signed session
//!    cookie ([`super::session`]), so a cookie planted by someone else, or a token from
//!    another session, does not pass.
//!
//! The comparison is constant-time so response timing reveals nothing.

use crate::http::cookies;
use crate::http::error::AppError;
use crate::http::session::{Session, SessionKey};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use service_runtime::tokens::constant_time_eq;
use std::convert::Infallible;

/// Header accepted instead of the form field (for `DELETE` from scripts), as Rails'.
pub const HEADER: &str = "x-csrf-token";

/// The request's session and what it may submit.
#[derive(Debug, Clone)]
pub struct CsrfToken {
    session: Session,
    token: String,
    cookie: Option<String>,
    origin: Result<(), &'static str>,
}

impl CsrfToken {
    /// The session of `headers` (a new one if it has none we signed).
    pub fn from_headers(headers: &HeaderMap, key: &SessionKey) -> Self {
        let secure = cookies::is_https(headers);
        let cookie = cookies::get(headers, Session::cookie_name(secure));
        let session = Session::from_cookie(cookie.as_deref(), key, secure);
        CsrfToken {
            token: session.csrf_token(key),
            cookie: session.set_cookie(key),
            session,
            origin: same_origin(headers),
        }
    }

    /// The token to put into forms.
    pub fn value(&self) -> &str {
        &self.token
    }

    /// The `Set-Cookie` value to send when the session was just started.
    pub fn set_cookie(&self) -> Option<String> {
        self.cookie.clone()
    }

    /// Checks that the request comes from our pages and `submitted` is its session's token.
    ///
    /// # Errors
    /// [`AppError::Forbidden`].
    pub fn verify(&self, submitted: &str) -> Result<(), AppError> {
        let why = if let Err(why) = self.origin {
            why
        } else if self.session.is_new() {
            "no session cookie (or one we did not sign)"
        } else if !constant_time_eq(self.token.as_bytes(), submitted.as_bytes()) {
            "token does not belong to this session"
        } else {
            return Ok(());
        };
        tracing::warn!(reason = why, "request refused by the CSRF check");
        Err(AppError::Forbidden)
    }
}

impl<S> FromRequestParts<S> for CsrfToken
where
    SessionKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(CsrfToken::from_headers(
            &parts.headers,
            &SessionKey::from_ref(state),
        ))
    }
}

/// Whether the browser says the request comes from one of our own pages. Requests without
/// `Sec-Fetch-Site` and `Origin` (old browsers, scripts, curl) pass on to the token check.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err("Sec-Fetch-Site is not same-origin");
    }
    let Some(origin) = header(ORIGIN.as_str()) else {
        return Ok(());
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err("Origin is opaque (null) or malformed");
    };
    if cookies::is_https(headers) && scheme != "https" {
        return Err("Origin is plain HTTP on an HTTPS site");
    }
    // A proxy may pass the browser's host on in X-Forwarded-Host; a cross-site form cannot
    // set that header, so matching either is safe.
    let forwarded = header("x-forwarded-host").and_then(|h| h.split(',').next());
    let ours = [header(HOST.as_str()), forwarded];
    if ours
        .into_iter()
        .flatten()
        .any(|h| h.trim().eq_ignore_ascii_case(authority))
    {
        Ok(())
    } else {
        Err("Origin is another site or port")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_and_fetch_sites() {
        let ok = [
            vec![],
            vec![("host", "localhost:3000")],
            vec![
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000"),
            ],
            vec![
                ("host", "LOCALHOST:3000"),
                ("origin", "http://localhost:3000"),
            ],
            vec![("sec-fetch-site", "same-origin")],
            vec![("sec-fetch-site", "none")],
            vec![
                ("host", "web:3000"),
                ("x-forwarded-host", "mail.example"),
                ("x-forwarded-proto", "https"),
                ("origin", "https://mail.example"),
            ],
        ];
        for h in ok {
            assert_eq!(same_origin(&headers(&h)), Ok(()), "{h:?}");
        }
        let refused = [
            vec![
                ("host", "localhost:3000"),
                ("origin", "http://localhost:1080"),
            ],
            vec![
                ("host", "localhost:3000"),
                ("origin", "http://evil.example"),
            ],
            vec![("host", "localhost:3000"), ("origin", "null")],
            vec![("sec-fetch-site", "same-site")],
            vec![("sec-fetch-site", "cross-site")],
            vec![
                ("host", "mail.example"),
                ("x-forwarded-proto", "https"),
                ("origin", "http://mail.example"),
            ],
        ];
        for h in refused {
            assert!(same_origin(&headers(&h)).is_err(), "{h:?}");
        }
    }
}
