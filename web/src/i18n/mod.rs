//! UI texts in Japanese (the seed's language, the default) and English.
//!
//! - [`negotiation`]: which language a request gets (the `lang` cookie set by the switch
//!   link, else `Accept-Language`).
//! - [`catalogue`]: every text in both languages, checked at compile time (a text missing in
//!   one language does not build).
//! - [`format`]: filling `{name}` placeholders and grouping thousands.

pub mod catalogue;
pub mod format;
pub mod negotiation;

pub use catalogue::{EN, JA, Texts};
pub use format::{fill, thousands};
pub use negotiation::LANG_COOKIE;
use serde::Serialize;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// 日本語 (default).
    Ja,
    /// English.
    En,
}

impl Lang {
    /// `ja` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// Parses `ja`/`en` (as used by the switch link and the cookie).
    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The texts in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}
