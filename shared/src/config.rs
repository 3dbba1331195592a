//! Configuration from the environment: table and queue names, link-signing keys, API keys.
//!
//! Secrets come from the environment in local mode (`SONDEO_LINK_KEYS`, `SONDEO_API_KEYS`) and
//! from AWS Secrets Manager on Lambda (`SONDEO_LINK_KEYS_SECRET_ARN`, `SONDEO_API_KEYS_SECRET_ARN`).

use crate::token::{KeyringError, LinkKeyring};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A configuration value that is missing or unusable; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// The link-signing keys are unusable.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Any other unusable value.
    #[error("{0}")]
    Invalid(String),
}

/// An environment variable that must be set.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// An optional environment variable (empty counts as unset).
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

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
    pub fn from_list(list: &str) -> Result<ApiKeys, ConfigError> {
        ApiKeys::new(
            list.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Keys from the secret's JSON object: every string value is a key.
    pub fn from_secret_json(json: &str) -> Result<ApiKeys, ConfigError> {
        let map: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
            ConfigError::Invalid(format!(
                "API key secret is not a JSON object of strings: {e}"
            ))
        })?;
        ApiKeys::new(map.into_values().collect())
    }

    fn new(keys: Vec<String>) -> Result<ApiKeys, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::Invalid("no API key configured".into()));
        }
        if keys.iter().any(|k| k.len() < 16) {
            return Err(ConfigError::Invalid(
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

/// Reads a Secrets Manager secret's string value.
pub async fn read_secret(sdk: &aws_config::SdkConfig, arn: &str) -> Result<String, ConfigError> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            ConfigError::Invalid(format!(
                "cannot read secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::Invalid(format!("secret {arn} has no string value")))
}

/// The link-signing keyring: `SONDEO_LINK_KEYS` (kid:secret,…) or the secret named by `SONDEO_LINK_KEYS_SECRET_ARN`.
pub async fn link_keyring(sdk: &aws_config::SdkConfig) -> Result<LinkKeyring, ConfigError> {
    if let Some(spec) = optional("SONDEO_LINK_KEYS") {
        return Ok(LinkKeyring::from_spec(&spec)?);
    }
    let arn = required("SONDEO_LINK_KEYS_SECRET_ARN")?;
    Ok(LinkKeyring::from_secret_json(
        &read_secret(sdk, &arn).await?,
    )?)
}

/// The API keys: `SONDEO_API_KEYS` (comma-separated) or the secret named by `SONDEO_API_KEYS_SECRET_ARN`.
pub async fn api_keys(sdk: &aws_config::SdkConfig) -> Result<ApiKeys, ConfigError> {
    if let Some(list) = optional("SONDEO_API_KEYS") {
        return ApiKeys::from_list(&list);
    }
    let arn = required("SONDEO_API_KEYS_SECRET_ARN")?;
    ApiKeys::from_secret_json(&read_secret(sdk, &arn).await?)
}

/// CORS origins from `SONDEO_ALLOWED_ORIGINS` (comma-separated).
pub fn allowed_origins() -> Vec<String> {
    optional("SONDEO_ALLOWED_ORIGINS")
        .map(|v| {
            v.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default()
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
