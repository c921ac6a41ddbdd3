//! Settings from environment variables: the one pattern both binaries use.
//!
//! A binary's `Settings::from_env()` is `from_vars(&Vars::from_env())`; tests call
//! `from_vars(&Vars::from_pairs(..))` instead, because the process environment is shared by
//! tests running in parallel. Nothing else reads the environment.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A variable is set to something unusable; the process stops at boot with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not parseable as the expected type, or out of range.
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: String,
        /// What it was set to (`[redacted]` for secrets).
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A combination of variables does not work (one half of a pair missing, …).
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    /// `var` is set to `value`, which is unusable because of `reason`.
    pub fn invalid(var: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: var.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The variables a configuration is read from. Empty and blank values count as unset, as
/// Compose and Kubernetes write `VAR=` for "no value".
pub struct Vars {
    values: HashMap<String, String>,
}

impl Vars {
    /// The process environment.
    pub fn from_env() -> Self {
        Vars::from_pairs(std::env::vars())
    }

    /// Explicit variables (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Vars {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        }
    }

    /// The value of `name`, trimmed, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.trim().to_owned())
    }

    /// `name` parsed as `T`, if set.
    ///
    /// # Errors
    /// The value does not parse.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|e: T::Err| ConfigError::invalid(name, &v, e.to_string()))
            })
            .transpose()
    }

    /// `name` as seconds (fractions allowed, 0 to one day), if set.
    ///
    /// # Errors
    /// Not a number, or out of range.
    pub fn seconds(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(secs) = self.parse::<f64>(name)? else {
            return Ok(None);
        };
        if !(0.0..=86_400.0).contains(&secs) {
            let value = self.get(name).unwrap_or_default();
            return Err(ConfigError::invalid(
                name,
                &value,
                "must be 0..=86400 seconds",
            ));
        }
        Ok(Some(Duration::from_secs_f64(secs)))
    }

    /// `name` as a [`Secret`], if set (not trimmed: a password may end in a space).
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.values.get(name).map(|v| Secret(v.clone()))
    }
}

/// A password or token: `Debug` and `Display` never show it, so it cannot end up in a log
/// line or a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let v = Vars::from_pairs([("A", " 7 "), ("B", "  "), ("C", "")]);
        assert_eq!(v.parse::<u16>("A").unwrap(), Some(7));
        assert_eq!(v.get("B"), None);
        assert_eq!(v.get("C"), None);
        assert_eq!(v.get("D"), None);
    }

    #[test]
    fn errors_name_the_variable_and_the_value() {
        let v = Vars::from_pairs([("PORT", "http"), ("T", "-1"), ("U", "1e9")]);
        let e = v.parse::<u16>("PORT").unwrap_err().to_string();
        assert!(e.starts_with("PORT=\"http\": "), "{e}");
        assert!(v.seconds("T").is_err());
        assert!(v.seconds("U").is_err());
        assert_eq!(
            Vars::from_pairs([("T", "2.5")]).seconds("T").unwrap(),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Vars::from_pairs([("P", "hunter2 ")]).secret("P").unwrap();
        assert_eq!(s.expose(), "hunter2 ");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
