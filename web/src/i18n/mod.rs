//! UI texts in Japanese (the seed's language, the default) and English.
//!
//! - [`negotiation`]: which language a request gets (the `lang` cookie set by the switch
//!   link, else `Accept-Language`); [`Lang`] is an extractor.
//! - [`catalogue`]: every text in both languages, checked at compile time (a text missing in
//!   one language does not build).
//! - [`mod@format`]: filling placeholders (`{n}`, English plurals `{n:one|other}`), grouping
//!   thousands. Templates reach texts through one checked function, `t("key", n=1)`.
//! - [`zone`]: the display time zone (`DISPLAY_TIME_ZONE`/`TZ`, else Asia/Tokyo in Japanese
//!   and UTC in English) and its name next to times.

pub mod catalogue;
pub mod format;
pub mod negotiation;
pub mod zone;

pub use catalogue::{EN, JA, Texts};
pub use format::{Arg, fill, thousands};
pub use negotiation::LANG_COOKIE;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 日本語 (default).
    Ja,
    /// English.
    En,
}

impl Lang {
    /// Both, for tests and for rendering every template in each.
    pub const ALL: [Lang; 2] = [Lang::Ja, Lang::En];

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
