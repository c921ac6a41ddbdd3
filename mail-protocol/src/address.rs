//! The e-mail address rule shared by the web (forms, CSV import) and the worker.

/// Longest address kept (the seed's `VARCHAR(255)`, minus one for RFC 5321's 254 limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Rails' `URI::MailTo::EMAIL_REGEXP` (what the seed validates with), written out:
/// `local@label(.label)*`, local from the RFC 5322 atom characters and dots, labels of 1–63
/// letters, digits and inner hyphens.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_LEN {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        (1..=63).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    local_ok && domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rails_accepts_these() {
        for e in [
            "a@example.test",
            "first.last+tag@sub.example.co.jp",
            "user@localhost",
            "o'neil@x-y.example",
        ] {
            assert!(is_valid_email(e), "{e}");
        }
    }

    #[test]
    fn rails_refuses_these() {
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
            "ユーザー@example.test",
            "<script>@x.test",
        ] {
            assert!(!is_valid_email(e), "{e}");
        }
        assert!(!is_valid_email(&format!("{}@x.test", "a".repeat(250))));
    }
}
