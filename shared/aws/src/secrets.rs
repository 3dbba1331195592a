//! Secrets: link-signing keys and API keys, from the environment or AWS Secrets Manager.
//!
//! Secrets come from the environment in local mode (`SONDEO_LINK_KEYS`, `SONDEO_API_KEYS`) and
//! from AWS Secrets Manager on Lambda (`SONDEO_LINK_KEYS_SECRET_ARN`, `SONDEO_API_KEYS_SECRET_ARN`);
//! a function's configuration reads which one into a [`KeySource`], and nothing here reads the
//! environment.

use sondeo_domain::keys::{ApiKeys, InvalidApiKeys};
use sondeo_domain::settings::{Presence, SettingError, Settings, Variable};
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

/// Where a secret comes from: its value (local mode) or a Secrets Manager ARN (Lambda).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The secret's value, from the named variable (local mode).
    Value {
        /// The variable it came from, named in errors.
        variable: &'static str,
        /// The value.
        value: String,
    },
    /// The ARN of the Secrets Manager secret holding the value.
    SecretArn(String),
}

impl KeySource {
    /// `local` when set (local mode), else the ARN in `arn` (required then); errors name the variable.
    pub fn from_settings(
        settings: &Settings,
        local: &'static str,
        arn: &'static str,
    ) -> Result<KeySource, SettingError> {
        if let Some(value) = settings.optional(local) {
            return Ok(KeySource::Value {
                variable: local,
                value,
            });
        }
        Ok(KeySource::SecretArn(settings.required(arn)?))
    }

    /// The link keys: `SONDEO_LINK_KEYS` (kid:secret,…) or `SONDEO_LINK_KEYS_SECRET_ARN`.
    pub fn link_keys(settings: &Settings) -> Result<KeySource, SettingError> {
        KeySource::from_settings(settings, LINK_KEYS, LINK_KEYS_SECRET_ARN)
    }

    /// The API keys: `SONDEO_API_KEYS` (comma-separated) or `SONDEO_API_KEYS_SECRET_ARN`.
    pub fn api_keys(settings: &Settings) -> Result<KeySource, SettingError> {
        KeySource::from_settings(settings, API_KEYS, API_KEYS_SECRET_ARN)
    }
}

/// The local-mode variable holding the link-signing keys.
pub const LINK_KEYS: &str = "SONDEO_LINK_KEYS";
/// The variable holding the ARN of the link-signing keys' secret.
pub const LINK_KEYS_SECRET_ARN: &str = "SONDEO_LINK_KEYS_SECRET_ARN";
/// The local-mode variable holding the API keys.
pub const API_KEYS: &str = "SONDEO_API_KEYS";
/// The variable holding the ARN of the API keys' secret.
pub const API_KEYS_SECRET_ARN: &str = "SONDEO_API_KEYS_SECRET_ARN";

/// The declarations of the link keys' two variables, for a function's `VARIABLES`.
pub const LINK_KEY_VARIABLES: [Variable; 2] = [
    Variable {
        name: LINK_KEYS_SECRET_ARN,
        presence: Presence::SecretArn { local: LINK_KEYS },
        about: "ARN of the Secrets Manager secret holding the link-signing keys",
    },
    Variable {
        name: LINK_KEYS,
        presence: Presence::LocalSecret {
            arn: LINK_KEYS_SECRET_ARN,
        },
        about: "local mode only: the link-signing keys themselves, kid:secret,...",
    },
];

/// The declarations of the API keys' two variables, for a function's `VARIABLES`.
pub const API_KEY_VARIABLES: [Variable; 2] = [
    Variable {
        name: API_KEYS_SECRET_ARN,
        presence: Presence::SecretArn { local: API_KEYS },
        about: "ARN of the Secrets Manager secret holding the API keys",
    },
    Variable {
        name: API_KEYS,
        presence: Presence::LocalSecret {
            arn: API_KEYS_SECRET_ARN,
        },
        about: "local mode only: the API keys themselves, comma-separated",
    },
];

/// The link-signing keyring from its source: parsed in place, or read from Secrets Manager.
pub async fn link_keyring(
    sdk: &aws_config::SdkConfig,
    source: &KeySource,
) -> Result<LinkKeyring, ConfigError> {
    match source {
        KeySource::Value { variable, value } => {
            LinkKeyring::from_spec(value).map_err(|e| invalid(variable, e))
        }
        KeySource::SecretArn(arn) => Ok(LinkKeyring::from_secret_json(
            &read_secret(sdk, arn).await?,
        )?),
    }
}

/// The API keys from their source: parsed in place, or read from Secrets Manager.
pub async fn api_keys(
    sdk: &aws_config::SdkConfig,
    source: &KeySource,
) -> Result<ApiKeys, ConfigError> {
    match source {
        KeySource::Value { variable, value } => {
            ApiKeys::from_list(value).map_err(|e| invalid(variable, e))
        }
        KeySource::SecretArn(arn) => Ok(ApiKeys::from_secret_json(&read_secret(sdk, arn).await?)?),
    }
}

fn invalid(variable: &'static str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Setting(SettingError::Invalid {
        name: variable,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_value_wins_over_the_secret_arn() {
        let s = Settings::from_pairs(&[(LINK_KEYS, "k1:s"), (LINK_KEYS_SECRET_ARN, "arn:x")]);
        assert_eq!(
            KeySource::link_keys(&s),
            Ok(KeySource::Value {
                variable: LINK_KEYS,
                value: "k1:s".into()
            })
        );
        let s = Settings::from_pairs(&[(API_KEYS_SECRET_ARN, "arn:x")]);
        assert_eq!(
            KeySource::api_keys(&s),
            Ok(KeySource::SecretArn("arn:x".into()))
        );
    }

    #[test]
    fn neither_variable_set_names_the_secret_arn_variable() {
        let err = KeySource::link_keys(&Settings::from_pairs(&[])).unwrap_err();
        assert_eq!(err, SettingError::Missing(LINK_KEYS_SECRET_ARN));
    }

    #[tokio::test]
    async fn a_malformed_local_value_names_its_variable() {
        let sdk = aws_config::SdkConfig::builder().build();
        let source = KeySource::Value {
            variable: API_KEYS,
            value: "short".into(),
        };
        let err = api_keys(&sdk, &source).await.unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable SONDEO_API_KEYS: "),
            "{err}"
        );
    }
}
