//! The browser session: a random id in a cookie, signed with the database's secret
//! (HMAC-SHA256), so the server knows every session cookie it accepts is one it issued.
//! Forms carry a token derived from the session id ([`Session::csrf_token`]): a token is
//! good only together with its own session's cookie.
//!
//! Served over HTTPS (behind a proxy that says so with `X-Forwarded-Proto: https`) the
//! cookie is `__Host-mail_web_session` with `Secure`: browsers only accept a cookie of that
//! name from a secure page of this very host, without `Domain`, for `Path=/`, so neither a
//! plain-HTTP page nor a sibling host can plant one. Over plain HTTP (localhost) the
//! cookie is `_mail_web_session`; what keeps a planted cookie useless there is the origin
//! check in [`super::csrf`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use std::sync::Arc;

/// Cookie name over plain HTTP.
pub const COOKIE: &str = "_mail_web_session";
/// Cookie name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-mail_web_session";
/// Random bytes in a session id.
const ID_BYTES: usize = 32;

/// The key sessions are signed with, from the database's instance secret (so sessions
/// survive restarts and end with the database).
#[derive(Clone)]
pub struct SessionKey(Arc<hmac::Key>);

impl SessionKey {
    /// The HMAC-SHA256 key for `secret`.
    pub fn new(secret: &[u8; 32]) -> Self {
        SessionKey(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    fn tag(&self, purpose: &[u8], id: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(purpose);
        ctx.update(b"\0");
        ctx.update(id.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }

    fn verify(&self, purpose: &[u8], id: &str, tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let mut msg = Vec::with_capacity(purpose.len() + 1 + id.len());
        msg.extend_from_slice(purpose);
        msg.push(0);
        msg.extend_from_slice(id.as_bytes());
        hmac::verify(&self.0, &msg, &tag).is_ok()
    }
}

/// This request's session: the cookie's if it is one we signed, else a new one to be set.
#[derive(Debug, Clone)]
pub struct Session {
    id: String,
    is_new: bool,
    secure: bool,
}

impl Session {
    /// Reads the session cookie (`__Host-` name when `secure`), or starts a new session.
    pub fn from_cookie(cookie: Option<&str>, key: &SessionKey, secure: bool) -> Self {
        let valid = cookie
            .and_then(|c| c.split_once('.'))
            .filter(|(id, sig)| !id.is_empty() && key.verify(b"session", id, sig));
        match valid {
            Some((id, _)) => Session {
                id: id.to_owned(),
                is_new: false,
                secure,
            },
            None => {
                let bytes: [u8; ID_BYTES] = rand::random();
                Session {
                    id: URL_SAFE_NO_PAD.encode(bytes),
                    is_new: true,
                    secure,
                }
            }
        }
    }

    /// The cookie name for this scheme.
    pub fn cookie_name(secure: bool) -> &'static str {
        if secure { SECURE_COOKIE } else { COOKIE }
    }

    /// Whether the browser has not shown this session yet (nothing can be verified
    /// against it).
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// The CSRF token of this session's forms.
    pub fn csrf_token(&self, key: &SessionKey) -> String {
        key.tag(b"csrf", &self.id)
    }

    /// The `Set-Cookie` value for a new session: HttpOnly (no script needs it),
    /// SameSite=Lax (never sent on cross-site POSTs), and over HTTPS `Secure` under the
    /// `__Host-` name.
    pub fn set_cookie(&self, key: &SessionKey) -> Option<String> {
        self.is_new.then(|| {
            let value = format!("{}.{}", self.id, key.tag(b"session", &self.id));
            let name = Session::cookie_name(self.secure);
            let secure = if self.secure { "; Secure" } else { "" };
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signed_sessions_are_accepted_and_tokens_are_bound_to_them() {
        let key = SessionKey::new(&[7; 32]);
        let fresh = Session::from_cookie(None, &key, false);
        assert!(fresh.is_new());
        let cookie = fresh.set_cookie(&key).unwrap();
        assert!(cookie.starts_with("_mail_web_session="));
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        let back = Session::from_cookie(Some(value), &key, false);
        assert!(!back.is_new());
        assert!(back.set_cookie(&key).is_none());
        assert_eq!(back.csrf_token(&key), fresh.csrf_token(&key));
        // Forged, tampered, or signed by another database: a new session.
        for forged in [
            "a".repeat(64),
            format!("{}.{}", "x".repeat(43), "y".repeat(43)),
            value.replacen(&value[..1], if &value[..1] == "A" { "B" } else { "A" }, 1),
        ] {
            assert!(
                Session::from_cookie(Some(&forged), &key, false).is_new(),
                "{forged}"
            );
        }
        let other = SessionKey::new(&[8; 32]);
        assert!(Session::from_cookie(Some(value), &other, false).is_new());
        // Another session has another token.
        let second = Session::from_cookie(None, &key, false);
        assert_ne!(second.csrf_token(&key), fresh.csrf_token(&key));
    }

    #[test]
    fn over_https_the_cookie_is_host_prefixed_and_secure() {
        let key = SessionKey::new(&[7; 32]);
        let cookie = Session::from_cookie(None, &key, true)
            .set_cookie(&key)
            .unwrap();
        assert!(cookie.starts_with("__Host-mail_web_session="));
        assert!(cookie.contains("; Path=/;"));
        assert!(cookie.ends_with("; Secure"));
        assert!(!cookie.contains("Domain"));
    }
}
