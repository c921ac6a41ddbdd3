//! The time zone times are shown in, and the zone's name printed next to them.
//!
//! Stored times are UTC (RFC 3339). A learner in Japan reads Japanese times, one reading the
//! English UI on a server somewhere reads UTC unless someone chose a zone: so
//! `DISPLAY_TIME_ZONE` (or `TZ`) applies to both languages, and without it the Japanese UI
//! shows Asia/Tokyo and the English one UTC. The zone's abbreviation (`JST`, `UTC`, `CET`)
//! goes next to every time or table of times, so a time is never ambiguous.

use super::Lang;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The configured display zone, if any (else each language's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DisplayZone(Option<Tz>);

impl DisplayZone {
    /// The zone set by `DISPLAY_TIME_ZONE`/`TZ`, for every language.
    pub fn fixed(tz: Tz) -> Self {
        DisplayZone(Some(tz))
    }

    /// What `lang` shows: the configured zone, else Asia/Tokyo (ja) or UTC (en).
    pub fn for_lang(self, lang: Lang) -> Tz {
        self.0.unwrap_or(match lang {
            Lang::Ja => Tz::Asia__Tokyo,
            Lang::En => Tz::UTC,
        })
    }

    /// The configured zone, if one was set.
    pub fn configured(self) -> Option<Tz> {
        self.0
    }
}

/// Reads a zone name as `DISPLAY_TIME_ZONE` or `TZ` spell it: an IANA name (`Asia/Tokyo`,
/// `UTC`, `Europe/Berlin`), optionally with glibc's leading `:`.
pub fn parse(name: &str) -> Option<Tz> {
    let name = name.trim();
    let name = name.strip_prefix(':').unwrap_or(name);
    name.parse::<Tz>().ok()
}

/// `2026-11-24T04:50:00.123Z` in `tz` as the seed's `%m/%d %H:%M` (`11/24 13:50` in Tokyo);
/// anything unparseable is returned as it came.
pub fn short_time(rfc3339: &str, tz: Tz) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&tz).format("%m/%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// Epoch seconds in `tz` as `%H:%M:%S` (a time later today, such as when a job is due).
pub fn clock_time(epoch_secs: f64, tz: Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis((epoch_secs * 1000.0) as i64)
        .map(|t| t.with_timezone(&tz).format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The zone's abbreviation now (`JST`, `UTC`, `CEST`; a numeric offset such as `+03` for
/// zones that have no letters).
pub fn abbreviation(tz: Tz) -> String {
    Utc::now().with_timezone(&tz).format("%Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_have_their_defaults_unless_a_zone_is_set() {
        let none = DisplayZone::default();
        assert_eq!(none.for_lang(Lang::Ja), Tz::Asia__Tokyo);
        assert_eq!(none.for_lang(Lang::En), Tz::UTC);
        let berlin = DisplayZone::fixed(Tz::Europe__Berlin);
        assert_eq!(berlin.for_lang(Lang::Ja), Tz::Europe__Berlin);
        assert_eq!(berlin.for_lang(Lang::En), Tz::Europe__Berlin);
    }

    #[test]
    fn times_convert_and_name_their_zone() {
        let t = "2026-11-24T04:50:00.123Z";
        assert_eq!(short_time(t, Tz::Asia__Tokyo), "11/24 13:50");
        assert_eq!(short_time(t, Tz::UTC), "11/24 04:50");
        // The day changes too.
        assert_eq!(
            short_time("2026-11-24T20:00:00Z", Tz::Asia__Tokyo),
            "11/25 05:00"
        );
        assert_eq!(short_time("garbage", Tz::UTC), "garbage");
        assert_eq!(abbreviation(Tz::Asia__Tokyo), "JST");
        assert_eq!(abbreviation(Tz::UTC), "UTC");
        assert_eq!(clock_time(1_795_495_443.5, Tz::UTC), "04:44:03");
    }

    #[test]
    fn zone_names_parse_like_tz_does() {
        assert_eq!(parse("Asia/Tokyo"), Some(Tz::Asia__Tokyo));
        assert_eq!(parse(":Europe/Berlin"), Some(Tz::Europe__Berlin));
        assert_eq!(parse("UTC"), Some(Tz::UTC));
        assert_eq!(parse("JST-9"), None);
        assert_eq!(parse("Mars/Olympus"), None);
    }
}
