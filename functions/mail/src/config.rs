//! The mail function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::TRACING_VARIABLES;
use sondeo_aws::secrets::{KeySource, LINK_KEY_VARIABLES};
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::settings::{SettingError, Settings, Variable};

/// Every environment variable the mail function reads, its own and those read on its behalf by
/// shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "SONDEO_TABLE",
        "the DynamoDB table holding connections, invitations and the suppression list",
    ),
    Variable::required(
        "SONDEO_BASE_URL",
        "base URL of the collect routes the survey links in emails point at",
    ),
    LINK_KEY_VARIABLES[0],
    LINK_KEY_VARIABLES[1],
    Variable::optional(
        "SONDEO_SES_CONFIGURATION_SET",
        "SES configuration set every email is sent with (its event destination reports bounces and complaints)",
    ),
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the mail function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The DynamoDB table.
    pub table: String,
    /// Base URL of the survey links.
    pub base_url: String,
    /// Where the link-signing keys come from.
    pub link_keys: KeySource,
    /// The SES configuration set, if any.
    pub configuration_set: Option<String>,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl MailConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<MailConfig, SettingError> {
        MailConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<MailConfig, SettingError> {
        Ok(MailConfig {
            table: settings.required("SONDEO_TABLE")?,
            base_url: settings.required("SONDEO_BASE_URL")?,
            link_keys: KeySource::link_keys(settings)?,
            configuration_set: settings.optional("SONDEO_SES_CONFIGURATION_SET"),
            roots: Roots::from_settings(settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: &[(&str, &str)] = &[
        ("SONDEO_TABLE", "sondeo"),
        ("SONDEO_BASE_URL", "https://surveys.example.com"),
        (
            "SONDEO_LINK_KEYS_SECRET_ARN",
            "arn:aws:secretsmanager:links",
        ),
        ("SONDEO_SES_CONFIGURATION_SET", "sondeo-mail"),
    ];

    #[test]
    fn a_lambda_environment_gives_every_setting_and_each_missing_one_is_named() {
        let c = MailConfig::from_settings(&Settings::from_pairs(LAMBDA)).unwrap();
        assert_eq!(c.base_url, "https://surveys.example.com");
        assert_eq!(
            c.link_keys,
            KeySource::SecretArn("arn:aws:secretsmanager:links".into())
        );
        assert_eq!(c.configuration_set.as_deref(), Some("sondeo-mail"));
        for name in [
            "SONDEO_TABLE",
            "SONDEO_BASE_URL",
            "SONDEO_LINK_KEYS_SECRET_ARN",
        ] {
            let pairs: Vec<_> = LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = MailConfig::from_settings(&Settings::from_pairs(&pairs))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("environment variable {name} is not set"));
        }
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(LAMBDA);
        MailConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
