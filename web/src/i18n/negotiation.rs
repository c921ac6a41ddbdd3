//! Which language a request gets: the `lang` cookie set by the switch link wins; else the
//! `Accept-Language` entry with the highest q among ja/en; else Japanese. Handlers take
//! [`Lang`] as an extractor.

use super::Lang;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;

/// Cookie remembering the language switch.
pub const LANG_COOKIE: &str = "lang";

impl Lang {
    /// The cookie wins; else the `Accept-Language` entry with the highest q among ja/en;
    /// else Japanese.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(lang) =
            crate::http::cookies::get(headers, LANG_COOKIE).and_then(|c| Lang::from_code(&c))
        {
            return lang;
        }
        let Some(accept) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::Ja;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "ja" || tag.starts_with("ja-") {
                Lang::Ja
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Ja, |(_, l)| l)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn language_choice() {
        assert_eq!(Lang::from_headers(&headers(&[])), Lang::Ja);
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "en-US,en;q=0.9")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "fr, en;q=0.5, ja;q=0.8")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "de")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[
                ("accept-language", "en"),
                ("cookie", "x=1; lang=ja")
            ])),
            Lang::Ja
        );
    }
}
