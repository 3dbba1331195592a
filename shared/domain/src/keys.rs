//! API keys for the API-key routes, and constant-time comparison of secrets.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// API keys that cannot be used; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidApiKeys(pub String);

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing digests makes the time independent of the lengths too.
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The API keys that may call the API-key routes.
#[derive(Clone)]
pub struct ApiKeys(Vec<String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// Keys from a comma-separated list; each must be at least 16 characters.
    pub fn from_list(list: &str) -> Result<ApiKeys, InvalidApiKeys> {
        ApiKeys::new(
            list.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Keys from the secret's JSON object: every string value is a key.
    pub fn from_secret_json(json: &str) -> Result<ApiKeys, InvalidApiKeys> {
        let map: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
            InvalidApiKeys(format!(
                "API key secret is not a JSON object of strings: {e}"
            ))
        })?;
        ApiKeys::new(map.into_values().collect())
    }

    fn new(keys: Vec<String>) -> Result<ApiKeys, InvalidApiKeys> {
        if keys.is_empty() {
            return Err(InvalidApiKeys("no API key configured".into()));
        }
        if keys.iter().any(|k| k.len() < 16) {
            return Err(InvalidApiKeys(
                "API keys must be at least 16 characters".into(),
            ));
        }
        Ok(ApiKeys(keys))
    }

    /// Whether `given` is one of the keys.
    pub fn accepts(&self, given: &str) -> bool {
        // Check every key, so timing does not tell which one matched.
        self.0.iter().fold(false, |ok, k| {
            constant_time_eq(k.as_bytes(), given.as_bytes()) | ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_accept_only_their_own_keys() {
        let keys = ApiKeys::from_list("0123456789abcdef-one, 0123456789abcdef-two").unwrap();
        assert!(keys.accepts("0123456789abcdef-two"));
        assert!(!keys.accepts("0123456789abcdef-thr"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::from_list("short").is_err());
        assert!(ApiKeys::from_list("").is_err());
        let from_secret =
            ApiKeys::from_secret_json(r#"{"api_key":"0123456789abcdef-xyz"}"#).unwrap();
        assert!(from_secret.accepts("0123456789abcdef-xyz"));
        assert!(!format!("{from_secret:?}").contains("0123"));
    }
}
