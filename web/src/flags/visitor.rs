//! The visitor id Unleash sees as `userId`: a random id in a long-lived cookie, so a
//! percentage rollout or a variant split gives each browser the same answer on every visit
//! (Unleash's stickiness), and two browsers can land in different arms.
//!
//! It is not a credential (choosing one's own arm by editing the cookie is harmless), so it
//! is not signed; anything that is not 32 hex characters is replaced by a new id.

use crate::http::cookies;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;

/// Cookie name.
pub const COOKIE: &str = "mail_web_visitor";
/// A year: long enough that a learner keeps their arm through the lesson.
const MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;

/// This request's visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    id: String,
    is_new: bool,
    secure: bool,
}

impl Visitor {
    /// A new visitor with a random id.
    pub fn new() -> Self {
        let bytes: [u8; 16] = rand::random();
        Visitor {
            id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            is_new: true,
            secure: false,
        }
    }

    /// The visitor of `headers`' cookie, or a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let secure = cookies::is_https(headers);
        match cookies::get(headers, COOKIE).filter(|v| is_id(v)) {
            Some(id) => Visitor {
                id,
                is_new: false,
                secure,
            },
            None => Visitor {
                secure,
                ..Visitor::new()
            },
        }
    }

    /// The id (Unleash's `userId`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `Set-Cookie` value for a visitor the browser does not know yet.
    pub fn set_cookie(&self) -> Option<String> {
        self.is_new.then(|| {
            let secure = if self.secure { "; Secure" } else { "" };
            format!(
                "{COOKIE}={}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}",
                self.id
            )
        })
    }
}

impl Default for Visitor {
    fn default() -> Self {
        Visitor::new()
    }
}

fn is_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Visitor::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE as COOKIE_HEADER;

    #[test]
    fn a_visitor_keeps_their_id_and_bad_ids_are_replaced() {
        let fresh = Visitor::new();
        let cookie = fresh.set_cookie().unwrap();
        assert!(cookie.contains("Max-Age=31536000"), "{cookie}");
        let pair = cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(COOKIE_HEADER, HeaderValue::from_str(pair).unwrap());
        let back = Visitor::from_headers(&h);
        assert_eq!(back.id(), fresh.id());
        assert!(
            back.set_cookie().is_none(),
            "known visitors get no new cookie"
        );
        for bad in ["x", "<script>", &"g".repeat(32)] {
            let mut h = HeaderMap::new();
            h.insert(
                COOKIE_HEADER,
                HeaderValue::from_str(&format!("{COOKIE}={bad}")).unwrap(),
            );
            let v = Visitor::from_headers(&h);
            assert_ne!(v.id(), bad);
            assert!(v.set_cookie().is_some());
        }
        assert_ne!(Visitor::new().id(), Visitor::new().id());
    }
}
