//! Named settings read from the environment, with errors that name the variable, and the
//! declarations ([`Variable`]) each function makes of every variable it reads.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// A setting that is missing or unusable; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name}: {message}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}

/// Whether a function needs a variable set, as declared in its `VARIABLES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Must be set.
    Required,
    /// May be set; unset has a documented default.
    Optional,
    /// A Secrets Manager ARN, required unless its local-mode value (named here) is set instead.
    SecretArn {
        /// The variable holding the secret's value itself, in local mode.
        local: &'static str,
    },
    /// A secret's value, for local mode only: on Lambda the ARN variable named here is set, never the secret itself.
    LocalSecret {
        /// The variable holding the Secrets Manager ARN.
        arn: &'static str,
    },
}

/// One environment variable a function reads: its name, whether it must be set, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// The variable's name.
    pub name: &'static str,
    /// Whether it must be set.
    pub presence: Presence,
    /// What it holds, in a few words.
    pub about: &'static str,
}

impl Variable {
    /// A variable that must be set.
    pub const fn required(name: &'static str, about: &'static str) -> Variable {
        Variable {
            name,
            presence: Presence::Required,
            about,
        }
    }

    /// A variable that may be left unset.
    pub const fn optional(name: &'static str, about: &'static str) -> Variable {
        Variable {
            name,
            presence: Presence::Optional,
            about,
        }
    }
}

/// Where settings are looked up: the process environment, or fixed pairs (tests); remembers every name asked for.
pub struct Settings {
    fixed: Option<BTreeMap<String, String>>,
    asked: RefCell<BTreeSet<String>>,
}

impl Settings {
    /// Settings from the process environment.
    pub fn env() -> Settings {
        Settings {
            fixed: None,
            asked: RefCell::default(),
        }
    }

    /// Settings from the given name/value pairs only (the process environment is not read).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Settings {
        Settings {
            fixed: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            asked: RefCell::default(),
        }
    }

    /// An optional variable (empty counts as unset).
    pub fn optional(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_string());
        match &self.fixed {
            Some(map) => map.get(name).cloned().filter(|v| !v.is_empty()),
            None => optional(name),
        }
    }

    /// A variable that must be set (empty counts as unset).
    pub fn required(&self, name: &'static str) -> Result<String, SettingError> {
        self.optional(name).ok_or(SettingError::Missing(name))
    }

    /// An optional variable parsed with `parse`; an error names the variable.
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, SettingError> {
        self.optional(name)
            .map(|raw| {
                parse(&raw).map_err(|e| SettingError::Invalid {
                    name,
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// An `on`/`off` switch (case-insensitive), `default` when unset; anything else is an error.
    pub fn switch(&self, name: &'static str, default: bool) -> Result<bool, SettingError> {
        Ok(self
            .parsed(name, |v| match v.trim().to_ascii_lowercase().as_str() {
                "on" => Ok(true),
                "off" => Ok(false),
                other => Err(format!("expected on or off, not {other:?}")),
            })?
            .unwrap_or(default))
    }

    /// Every variable name looked up so far, to check a configuration reads only what it declares.
    pub fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }

    /// The names looked up so far that `declared` does not list (a configuration's test wants none).
    pub fn undeclared(&self, declared: &[Variable]) -> Vec<String> {
        self.asked
            .borrow()
            .iter()
            .filter(|name| !declared.iter().any(|v| v.name == name.as_str()))
            .cloned()
            .collect()
    }
}

/// An environment variable that must be set (empty counts as unset).
pub fn required(name: &'static str) -> Result<String, SettingError> {
    optional(name).ok_or(SettingError::Missing(name))
}

/// An optional environment variable (empty counts as unset).
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A comma-separated list of web origins, trimmed, without trailing slashes or empty entries.
pub fn parse_origins(list: &str) -> Vec<String> {
    list.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_trimmed_and_empty_entries_dropped() {
        assert_eq!(
            parse_origins(" https://a.example/ ,, https://b.example"),
            vec!["https://a.example", "https://b.example"]
        );
        assert!(parse_origins("").is_empty());
    }

    #[test]
    fn fixed_settings_treat_empty_as_unset_and_remember_what_was_asked() {
        let s = Settings::from_pairs(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(s.optional("A").as_deref(), Some("1"));
        assert_eq!(s.required("EMPTY"), Err(SettingError::Missing("EMPTY")));
        assert_eq!(s.optional("NONE"), None);
        let asked: Vec<String> = s.asked().into_iter().collect();
        assert_eq!(asked, ["A", "EMPTY", "NONE"]);
        let declared = [
            Variable::required("A", "a"),
            Variable::optional("EMPTY", "empty"),
        ];
        assert_eq!(s.undeclared(&declared), ["NONE"]);
    }

    #[test]
    fn a_switch_is_on_or_off_and_anything_else_names_the_variable() {
        let s = Settings::from_pairs(&[("W", "OFF"), ("X", "maybe")]);
        assert_eq!(s.switch("W", true), Ok(false));
        assert_eq!(s.switch("UNSET", true), Ok(true));
        let err = s.switch("X", true).unwrap_err().to_string();
        assert!(err.starts_with("environment variable X: "), "{err}");
    }

    #[test]
    fn a_parse_error_names_the_variable() {
        let s = Settings::from_pairs(&[("N", "abc")]);
        let err = s.parsed("N", str::parse::<u32>).unwrap_err().to_string();
        assert!(err.starts_with("environment variable N: "), "{err}");
        assert_eq!(s.parsed("UNSET", str::parse::<u32>), Ok(None));
    }
}
