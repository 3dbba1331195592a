//! The collect function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::{warm_up_setting, TRACING_VARIABLES, WARM_UP_VARIABLE};
use sondeo_aws::secrets::{KeySource, LINK_KEY_VARIABLES};
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::settings::{parse_origins, SettingError, Settings, Variable};

/// Every environment variable the collect function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required("SONDEO_TABLE", "the DynamoDB table holding the surveys"),
    Variable::required(
        "SONDEO_QUEUE_URL",
        "URL of the SQS queue accepted responses go to",
    ),
    LINK_KEY_VARIABLES[0],
    LINK_KEY_VARIABLES[1],
    Variable::optional(
        "SONDEO_ALLOWED_ORIGINS",
        "comma-separated web origins allowed to POST /v1/responses from a browser (none when unset)",
    ),
    WARM_UP_VARIABLE,
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the collect function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectConfig {
    /// The DynamoDB table holding the surveys.
    pub table: String,
    /// The SQS queue accepted responses go to.
    pub queue_url: String,
    /// Where the link-signing keys come from.
    pub link_keys: KeySource,
    /// Web origins allowed to call the submission API from a browser.
    pub allowed_origins: Vec<String>,
    /// Whether init opens the DynamoDB and SQS connections.
    pub warm_up: bool,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl CollectConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<CollectConfig, SettingError> {
        CollectConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<CollectConfig, SettingError> {
        Ok(CollectConfig {
            table: settings.required("SONDEO_TABLE")?,
            queue_url: settings.required("SONDEO_QUEUE_URL")?,
            link_keys: KeySource::link_keys(settings)?,
            allowed_origins: settings
                .optional("SONDEO_ALLOWED_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            warm_up: warm_up_setting(settings)?,
            roots: Roots::from_settings(settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: &[(&str, &str)] = &[
        ("SONDEO_TABLE", "sondeo"),
        ("SONDEO_QUEUE_URL", "https://sqs.example/q"),
        ("SONDEO_LINK_KEYS_SECRET_ARN", "arn:aws:secretsmanager:x"),
        (
            "SONDEO_ALLOWED_ORIGINS",
            "https://shop.example/, https://b.example",
        ),
        ("SONDEO_WARM_UP", "off"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut pairs = without(name);
        pairs.push((name, value));
        pairs
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        CollectConfig::from_settings(&Settings::from_pairs(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_lambda_environment_gives_every_setting() {
        let c = CollectConfig::from_settings(&Settings::from_pairs(LAMBDA)).unwrap();
        assert_eq!(c.table, "sondeo");
        assert_eq!(c.queue_url, "https://sqs.example/q");
        assert_eq!(
            c.link_keys,
            KeySource::SecretArn("arn:aws:secretsmanager:x".into())
        );
        assert_eq!(
            c.allowed_origins,
            ["https://shop.example", "https://b.example"]
        );
        assert!(!c.warm_up);
        assert_eq!(c.roots, Roots::Amazon);
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in [
            "SONDEO_TABLE",
            "SONDEO_QUEUE_URL",
            "SONDEO_LINK_KEYS_SECRET_ARN",
        ] {
            assert_eq!(
                error(&without(name)),
                format!("environment variable {name} is not set")
            );
        }
    }

    #[test]
    fn a_malformed_warm_up_switch_is_named() {
        let err = error(&with("SONDEO_WARM_UP", "sometimes"));
        assert!(
            err.starts_with("environment variable SONDEO_WARM_UP: "),
            "{err}"
        );
    }

    #[test]
    fn local_link_keys_replace_the_secret_arn() {
        let mut pairs = without("SONDEO_LINK_KEYS_SECRET_ARN");
        pairs.push(("SONDEO_LINK_KEYS", "k1:secret"));
        let c = CollectConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
        assert!(matches!(c.link_keys, KeySource::Value { .. }));
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(LAMBDA);
        CollectConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
