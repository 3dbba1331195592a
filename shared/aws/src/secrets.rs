//! Secrets: link-signing keys and API keys, from the environment or AWS Secrets Manager.
//!
//! Secrets come from the environment in local mode (`SONDEO_LINK_KEYS`, `SONDEO_API_KEYS`) and
//! from AWS Secrets Manager on Lambda (`SONDEO_LINK_KEYS_SECRET_ARN`, `SONDEO_API_KEYS_SECRET_ARN`).

use sondeo_domain::keys::{ApiKeys, InvalidApiKeys};
use sondeo_domain::settings::{optional, required, SettingError};
use sondeo_domain::token::{KeyringError, LinkKeyring};

/// A configuration value that is missing or unusable; the message names the variable or secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable is missing or unusable.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The link-signing keys are unusable.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The API keys are unusable.
    #[error(transparent)]
    ApiKeys(#[from] InvalidApiKeys),
    /// A secret cannot be read or has no string value.
    #[error("{0}")]
    Secret(String),
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
            ConfigError::Secret(format!(
                "cannot read secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::Secret(format!("secret {arn} has no string value")))
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
        return Ok(ApiKeys::from_list(&list)?);
    }
    let arn = required("SONDEO_API_KEYS_SECRET_ARN")?;
    Ok(ApiKeys::from_secret_json(&read_secret(sdk, &arn).await?)?)
}
