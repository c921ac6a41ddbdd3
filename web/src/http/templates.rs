//! The minijinja environment: templates embedded at build time (the binary runs from any
//! directory and in a container without the source tree), HTML autoescaping for `.html`,
//! and the page response with its cookies and Content-Security-Policy.

use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, SET_COOKIE};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value};

/// Every template, by the name templates use to refer to each other.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../../templates/layout.html"),
    ),
    (
        "pages/index.html",
        include_str!("../../../templates/pages/index.html"),
    ),
    (
        "pages/_live.html",
        include_str!("../../../templates/pages/_live.html"),
    ),
];

/// Builds the environment; a template syntax error stops the boot, not a request.
///
/// # Errors
/// The first template that does not compile.
pub fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // `.html` names get HTML autoescaping by minijinja's default callback; say so explicitly.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.add_filter("num", |v: Value| -> String {
        match i64::try_from(v.clone()) {
            Ok(n) => crate::i18n::thousands(n),
            Err(_) => v.to_string(),
        }
    });
    env.add_filter("short_time", short_time);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// `2026-11-24T04:50:00.123Z` → `11/24 04:50` (UTC), the seed's `%m/%d %H:%M`.
fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%m/%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// Renders `name` with `ctx`.
///
/// # Errors
/// [`AppError::Unexpected`] if rendering fails.
pub fn render(env: &Environment<'static>, name: &str, ctx: Value) -> Result<String, AppError> {
    Ok(env.get_template(name)?.render(ctx)?)
}

/// A random nonce for the one inline script of a page.
pub fn new_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A full HTML page: sets the CSRF cookie if it was just minted, clears a shown flash, and
/// sends a CSP that only allows our own nonce'd script (so an injected `<script>` would not
/// run even if escaping ever failed).
pub fn page(html: String, csrf: &CsrfToken, flash_shown: bool, nonce: &str) -> Response {
    let mut res = Html(html).into_response();
    let headers = res.headers_mut();
    if let Some(cookie) = csrf
        .set_cookie()
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.append(SET_COOKIE, cookie);
    }
    if flash_shown && let Ok(v) = HeaderValue::from_str(&crate::http::cookies::clear(flash::COOKIE))
    {
        headers.append(SET_COOKIE, v);
    }
    let csp = format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_templates_compile_and_filters_work() {
        let env = environment().unwrap();
        let t = env
            .template_from_str("{{ 1234567 | num }} {{ '2026-11-24T04:50:00.123Z' | short_time }}")
            .unwrap();
        assert_eq!(t.render(()).unwrap(), "1,234,567 11/24 04:50");
    }
}
