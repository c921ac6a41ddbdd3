//! A new address as a value that is already valid: parsed at the edge (form, CSV row), so the
//! store and the bulk send only ever see good data.

use serde::Serialize;

pub use mail_protocol::address::{MAX_EMAIL_LEN, is_valid_email};
/// Longest name kept.
pub const MAX_NAME_LEN: usize = 255;

/// Why an address was refused. The variants map to translated messages in [`crate::i18n`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Invalid {
    /// Name missing or blank.
    NameBlank,
    /// Name longer than [`MAX_NAME_LEN`] characters.
    NameTooLong,
    /// Name with a line break or another control character (it goes into a mail header).
    NameFormat,
    /// Email missing or blank.
    EmailBlank,
    /// Not an address the rule shared with the worker accepts ([`mail_protocol::address`]).
    EmailFormat,
}

/// A validated name + email pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    name: String,
    email: String,
}

impl NewAddress {
    /// Trims both fields and validates them; the first problem wins.
    ///
    /// # Errors
    /// [`Invalid`].
    pub fn parse(name: &str, email: &str) -> Result<Self, Invalid> {
        let name = name.trim();
        let email = email.trim();
        if name.is_empty() {
            return Err(Invalid::NameBlank);
        }
        if name.chars().count() > MAX_NAME_LEN {
            return Err(Invalid::NameTooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid::NameFormat);
        }
        if email.is_empty() {
            return Err(Invalid::EmailBlank);
        }
        if !is_valid_email(email) {
            return Err(Invalid::EmailFormat);
        }
        Ok(NewAddress {
            name: name.to_owned(),
            email: email.to_owned(),
        })
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address.
    pub fn email(&self) -> &str {
        &self.email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_reports_the_first_problem() {
        let a = NewAddress::parse("  山田 太郎 ", " taro@example.test ").unwrap();
        assert_eq!(a.name(), "山田 太郎");
        assert_eq!(a.email(), "taro@example.test");
        assert_eq!(NewAddress::parse(" ", "x"), Err(Invalid::NameBlank));
        assert_eq!(NewAddress::parse("n", ""), Err(Invalid::EmailBlank));
        assert_eq!(NewAddress::parse("n", "nope"), Err(Invalid::EmailFormat));
        assert_eq!(
            NewAddress::parse(&"長".repeat(256), "a@b.test"),
            Err(Invalid::NameTooLong)
        );
        assert_eq!(
            NewAddress::parse("a\nBcc: x@evil.test", "a@b.test"),
            Err(Invalid::NameFormat)
        );
    }
}
