//! The e-mail address rule shared by the web (forms, CSV import) and the worker (before
//! sending), so an address the web stores is one the worker will deliver to.
//!
//! ASCII only, `local@domain`:
//! - the local part is an RFC 5321 dot-atom of at most 64 characters: atoms of letters,
//!   digits and ``!#$%&'*+/=?^_`{|}~-`` joined by single dots (so no leading, trailing or
//!   doubled dot); quoted local parts (`"a b"@x`) are not accepted;
//! - the domain is one or more labels of 1–63 letters, digits and inner hyphens (Rails'
//!   `URI::MailTo::EMAIL_REGEXP`, which the seed validated with);
//! - at most 254 characters in all (RFC 5321's path limit).
//!
//! Everything this accepts is also accepted by lettre's `Address` parser (a property test
//! below checks it), so the worker never refuses an address the web took.

/// Longest address kept (RFC 5321: a 256-octet path minus the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Whether `email` is an address we accept (see the module docs).
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_LEN {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    is_valid_local_part(local) && is_valid_domain(domain)
}

/// A dot-atom of at most [`MAX_LOCAL_LEN`] characters.
fn is_valid_local_part(local: &str) -> bool {
    let atom_ok = |atom: &str| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b))
    };
    local.len() <= MAX_LOCAL_LEN && local.split('.').all(atom_ok)
}

/// Labels of letters, digits and inner hyphens.
fn is_valid_domain(domain: &str) -> bool {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        (1..=MAX_LABEL_LEN).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted() {
        for e in [
            "a@example.test",
            "first.last+tag@sub.example.co.jp",
            "user@localhost",
            "o'neil@x-y.example",
            "a.b.c@x.test",
            "!#$%&'*+/=?^_`{|}~-@x.test",
            &format!("{}@x.test", "a".repeat(64)),
            &format!("a@{}.test", "b".repeat(63)),
        ] {
            assert!(is_valid_email(e), "{e}");
        }
    }

    #[test]
    fn refused() {
        for e in [
            "",
            "plain",
            "@example.test",
            "a@",
            "a@@b.test",
            "a b@example.test",
            "a@-bad.test",
            "a@bad-.test",
            "a@exa_mple.test",
            "a@example..test",
            "a@.example.test",
            "a@example.test.",
            "ユーザー@example.test",
            "<script>@x.test",
            // What the worker's SMTP library (and SMTP servers) refuse:
            "w..x@example.test",
            ".lead@example.test",
            "trail.@example.test",
            ".@example.test",
            "\"quoted\"@example.test",
            "a@[127.0.0.1]",
            &format!("{}@x.test", "a".repeat(65)),
            &format!("a@{}.test", "b".repeat(64)),
        ] {
            assert!(!is_valid_email(e), "{e}");
        }
        let long = format!("{}@{}.test", "a".repeat(64), "b.".repeat(93));
        assert!(long.len() > MAX_EMAIL_LEN);
        assert!(!is_valid_email(&long));
    }

    /// Strings near the rule's edges: the local part and domain drawn from the characters
    /// that matter (atext, dots, hyphens, `@`, a few that are never allowed), in lengths
    /// around the limits.
    fn near_addresses() -> impl Strategy<Value = String> {
        let local =
            proptest::string::string_regex(r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~@ \x22-]{0,70}").unwrap();
        let domain =
            proptest::string::string_regex(r"([a-z0-9_-]{0,64}\.){0,4}[a-zA-Z0-9-]{0,65}").unwrap();
        (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
    }

    /// Addresses built to be valid, so the property below is not vacuous.
    fn valid_addresses() -> impl Strategy<Value = String> {
        let atom = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}";
        let label = "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?";
        (
            proptest::collection::vec(atom, 1..5),
            proptest::collection::vec(label, 1..4),
        )
            .prop_map(|(atoms, labels)| format!("{}@{}", atoms.join("."), labels.join(".")))
            .prop_filter("within the limits", |e| is_valid_email(e))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn whatever_we_accept_lettre_accepts(email in near_addresses()) {
            if is_valid_email(&email) {
                prop_assert!(email.parse::<lettre::Address>().is_ok(), "{email}");
            }
        }

        #[test]
        fn built_addresses_pass_both(email in valid_addresses()) {
            prop_assert!(email.parse::<lettre::Address>().is_ok(), "{email}");
        }

        #[test]
        fn arbitrary_text_accepted_only_if_lettre_agrees(email in "\\PC{0,80}") {
            if is_valid_email(&email) {
                prop_assert!(email.parse::<lettre::Address>().is_ok(), "{email}");
            }
        }
    }
}
