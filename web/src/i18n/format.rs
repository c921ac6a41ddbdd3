//! Filling a text's placeholders, grouping thousands, English plurals.
//!
//! A text names its values: `{n}` is replaced by the value `n` (integers are grouped by
//! thousands in both languages: `1,000件`), and `{n:one|other}` picks a word by `n` (English
//! only; Japanese has no plural forms). Filling is strict: a placeholder without a value, a
//! value the text does not use, or a plural of a non-number is an error, so a typo in a
//! template or a handler fails a test instead of showing `{n}` to a user.

use std::fmt::Write;

/// A value for a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A count: printed with thousands separators; can select a plural form.
    Num(i64),
    /// Printed as is.
    Text(String),
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Num(n)
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::Num(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

/// A text and its values do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `{name}` with no value named `name`.
    #[error("no value for {{{0}}}")]
    Missing(String),
    /// A value the text never mentions.
    #[error("value {0:?} is not used by the text")]
    Unused(String),
    /// `{` without its `}`.
    #[error("unclosed placeholder")]
    Unclosed,
    /// `{name:one|other}` where `name` is not a number, or without the `|`.
    #[error("plural {{{0}:…}} needs a number and two forms")]
    BadPlural(String),
}

/// Fills every placeholder of `text` from `args` (see the module docs).
///
/// # Errors
/// [`FormatError`] when the text and the values do not match.
pub fn format(text: &str, args: &[(&str, Arg)]) -> Result<String, FormatError> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut used = vec![false; args.len()];
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(FormatError::Unclosed)?;
        let inside = &after[..close];
        let (name, plural) = match inside.split_once(':') {
            Some((name, forms)) => (name, Some(forms)),
            None => (inside, None),
        };
        let index = args
            .iter()
            .position(|(k, _)| *k == name)
            .ok_or_else(|| FormatError::Missing(name.to_owned()))?;
        used[index] = true;
        match (plural, &args[index].1) {
            (None, Arg::Num(n)) => out.push_str(&thousands(*n)),
            (None, Arg::Text(s)) => out.push_str(s),
            (Some(forms), Arg::Num(n)) => {
                let (one, other) = forms
                    .split_once('|')
                    .ok_or_else(|| FormatError::BadPlural(name.to_owned()))?;
                out.push_str(if *n == 1 { one } else { other });
            }
            (Some(_), Arg::Text(_)) => return Err(FormatError::BadPlural(name.to_owned())),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(FormatError::Unused(args[i].0.to_owned()));
    }
    Ok(out)
}

/// [`format()`] for texts the code itself fills. A mismatch is a bug in this crate: debug
/// builds (every test) panic on it; a release build logs it and shows the text unfilled
/// rather than failing the request.
pub fn fill(text: &str, args: &[(&str, Arg)]) -> String {
    match format(text, args) {
        Ok(s) => s,
        Err(e) => {
            debug_assert!(false, "{text:?}: {e}");
            tracing::error!(text, error = %e, "text and values do not match");
            text.to_owned()
        }
    }
}

/// The placeholder names a text uses, in order of first use (for the catalogue's
/// consistency test).
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = after[..close].split(':').next().unwrap_or("");
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[close + 1..];
    }
    names
}

/// `1234567` → `1,234,567` (both languages group by thousands).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        let _ = out.write_char(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, JA, Texts};

    #[test]
    fn thousands_group_both_ways() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn placeholders_numbers_and_plurals() {
        assert_eq!(
            format(
                JA.flash_too_few,
                &[("have", 5usize.into()), ("need", 1000usize.into())]
            )
            .unwrap(),
            "送信対象が不足しています（現在5件、必要1,000件）"
        );
        assert_eq!(
            format(
                EN.flash_bulk_created,
                &[("n", 1usize.into()), ("queue", "high".into())]
            )
            .unwrap(),
            "Created 1 send job (queue: high)"
        );
        assert_eq!(
            format(
                EN.flash_bulk_created,
                &[("n", 1000usize.into()), ("queue", "default".into())]
            )
            .unwrap(),
            "Created 1,000 send jobs (queue: default)"
        );
        assert_eq!(
            format(
                JA.flash_bulk_created,
                &[("n", 1usize.into()), ("queue", "default".into())]
            )
            .unwrap(),
            "1件の送信ジョブを作成しました（キュー: default）"
        );
        assert_eq!(
            format(
                EN.flash_imported,
                &[
                    ("n", 1usize.into()),
                    ("dup", 0usize.into()),
                    ("bad", 2usize.into())
                ]
            )
            .unwrap(),
            "Imported 1 address (0 duplicates, 2 invalid)"
        );
        assert_eq!(
            format("{line}", &[("line", "1234".into())]).unwrap(),
            "1234"
        );
    }

    #[test]
    fn mismatches_are_errors() {
        assert_eq!(format("{n}件", &[]), Err(FormatError::Missing("n".into())));
        assert_eq!(
            format("x", &[("n", 1usize.into())]),
            Err(FormatError::Unused("n".into()))
        );
        assert_eq!(
            format("{n", &[("n", 1usize.into())]),
            Err(FormatError::Unclosed)
        );
        assert_eq!(
            format("{n:a|b}", &[("n", "x".into())]),
            Err(FormatError::BadPlural("n".into()))
        );
        assert_eq!(
            format("{n:a}", &[("n", 1usize.into())]),
            Err(FormatError::BadPlural("n".into()))
        );
    }

    /// Every text parses, and both languages name the same values, so code that fills a
    /// text correctly in one language does in the other.
    #[test]
    fn both_languages_use_the_same_placeholders() {
        let texts = |t: &'static Texts| Texts::KEYS.iter().map(move |k| (*k, t.get(k)));
        for ((key, ja), (_, en)) in texts(&JA).zip(texts(&EN)) {
            let (ja, en) = (ja.unwrap(), en.unwrap());
            let mut a = placeholders(ja);
            let mut b = placeholders(en);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{key}: {ja:?} / {en:?}");
            for text in [ja, en] {
                let args: Vec<(&str, Arg)> = a.iter().map(|n| (*n, Arg::Num(2))).collect();
                format(text, &args).unwrap_or_else(|e| panic!("{key}: {text:?}: {e}"));
            }
        }
    }
}
