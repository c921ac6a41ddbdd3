//! Cross-site request forgery protection, Rails-style: every form carries a hidden
//! `authenticity_token` that must equal the token in the `_mail_web_csrf` cookie.
//!
//! A cross-site page can make the browser POST here, but it can neither read our pages (to
//! learn the token) nor send our SameSite=Lax cookie along with a cross-site POST, so the two
//! never match. The comparison is constant-time so response timing reveals nothing.

use crate::http::cookies;
use crate::http::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;

/// Cookie holding the token.
pub const COOKIE: &str = "_mail_web_csrf";
/// Header accepted instead of the form field (for `DELETE` from scripts), as Rails'.
pub const HEADER: &str = "x-csrf-token";

/// The request's CSRF token: the cookie's, or a fresh one to be set with the response.
#[derive(Debug, Clone)]
pub struct CsrfToken {
    value: String,
    is_new: bool,
}

impl CsrfToken {
    /// Reads the cookie, or mints a new random token.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match cookies::get(headers, COOKIE).filter(|v| v.len() == 64) {
            Some(value) => CsrfToken {
                value,
                is_new: false,
            },
            None => CsrfToken {
                value: new_token(),
                is_new: true,
            },
        }
    }

    /// The token to put into forms.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` value to send when the token was just minted.
    pub fn set_cookie(&self) -> Option<String> {
        self.is_new.then(|| cookies::set(COOKIE, &self.value))
    }

    /// Checks a submitted token against the cookie.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] when the cookie is missing or the tokens differ.
    pub fn verify(&self, submitted: &str) -> Result<(), AppError> {
        if !self.is_new && constant_time_eq(self.value.as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CsrfToken::from_headers(&parts.headers))
    }
}

/// 32 random bytes as hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal length and equal bytes, without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_match_only_the_cookie() {
        let fresh = CsrfToken::from_headers(&HeaderMap::new());
        assert_eq!(fresh.value().len(), 64);
        assert!(fresh.set_cookie().is_some());
        // A fresh token was never seen by the browser: nothing verifies against it.
        assert!(fresh.verify(fresh.value()).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_str(&format!("{COOKIE}={}", fresh.value())).unwrap(),
        );
        let known = CsrfToken::from_headers(&h);
        assert!(known.set_cookie().is_none());
        assert!(known.verify(fresh.value()).is_ok());
        assert!(known.verify("").is_err());
        assert!(known.verify(&"0".repeat(64)).is_err());
    }
}
