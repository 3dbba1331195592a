//! Named settings read from the environment, with errors that name the variable.

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
}
