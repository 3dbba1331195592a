//! The metrics function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::{warm_up_setting, TRACING_VARIABLES, WARM_UP_VARIABLE};
use sondeo_aws::secrets::{KeySource, API_KEY_VARIABLES, LINK_KEY_VARIABLES};
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::settings::{SettingError, Settings, Variable};

/// Every environment variable the metrics function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "SONDEO_TABLE",
        "the DynamoDB table holding surveys and counters",
    ),
    API_KEY_VARIABLES[0],
    API_KEY_VARIABLES[1],
    LINK_KEY_VARIABLES[0],
    LINK_KEY_VARIABLES[1],
    Variable::optional(
        "SONDEO_BASE_URL",
        "base URL of the collect routes that minted links point at (derived from the request when unset)",
    ),
    Variable::optional(
        "SONDEO_WEBHOOK_BASE_URL",
        "base URL of the webhook function that connection webhook URLs point at (derived from the request when unset)",
    ),
    Variable::optional(
        "SONDEO_QUEUE_URL",
        "URL of the SQS response queue imported answers go through (POST /v1/imports is not served when unset)",
    ),
    Variable::optional(
        "SONDEO_ALERT_ALLOW_ADDRESSES",
        "comma-separated IP addresses or CIDR blocks alert rules may target although private (on-premises receivers)",
    ),
    WARM_UP_VARIABLE,
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the metrics function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The DynamoDB table holding surveys and counters.
    pub table: String,
    /// Where the API keys come from.
    pub api_keys: KeySource,
    /// Where the link-signing keys come from.
    pub link_keys: KeySource,
    /// Base URL of minted links; derived from each request when `None`.
    pub base_url: Option<String>,
    /// Base URL of the webhook function; derived from each request when `None`.
    pub webhook_base_url: Option<String>,
    /// The response queue imports go through; `POST /v1/imports` is not served when `None`.
    pub queue_url: Option<String>,
    /// Private addresses alert rules may target.
    pub alert_allow: sondeo_domain::addresses::AddressAllowlist,
    /// Whether init opens the DynamoDB connection.
    pub warm_up: bool,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl MetricsConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<MetricsConfig, SettingError> {
        MetricsConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<MetricsConfig, SettingError> {
        Ok(MetricsConfig {
            table: settings.required("SONDEO_TABLE")?,
            api_keys: KeySource::api_keys(settings)?,
            link_keys: KeySource::link_keys(settings)?,
            base_url: settings.optional("SONDEO_BASE_URL"),
            webhook_base_url: settings.optional("SONDEO_WEBHOOK_BASE_URL"),
            queue_url: settings.optional("SONDEO_QUEUE_URL"),
            alert_allow: sondeo_domain::addresses::AddressAllowlist::parse(
                &settings
                    .optional("SONDEO_ALERT_ALLOW_ADDRESSES")
                    .unwrap_or_default(),
            )
            .map_err(|e| SettingError::Invalid {
                name: "SONDEO_ALERT_ALLOW_ADDRESSES",
                message: e.to_string(),
            })?,
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
        ("SONDEO_API_KEYS_SECRET_ARN", "arn:aws:secretsmanager:api"),
        (
            "SONDEO_LINK_KEYS_SECRET_ARN",
            "arn:aws:secretsmanager:links",
        ),
        ("SONDEO_BASE_URL", "https://links.example/"),
        ("SONDEO_WEBHOOK_BASE_URL", "https://hooks.example"),
        ("SSL_CERT_FILE", "/etc/ssl/certs/ca.pem"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        MetricsConfig::from_settings(&Settings::from_pairs(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_lambda_environment_gives_every_setting() {
        let c = MetricsConfig::from_settings(&Settings::from_pairs(LAMBDA)).unwrap();
        assert_eq!(c.table, "sondeo");
        assert_eq!(
            c.api_keys,
            KeySource::SecretArn("arn:aws:secretsmanager:api".into())
        );
        assert_eq!(
            c.link_keys,
            KeySource::SecretArn("arn:aws:secretsmanager:links".into())
        );
        assert_eq!(c.base_url.as_deref(), Some("https://links.example/"));
        assert_eq!(c.webhook_base_url.as_deref(), Some("https://hooks.example"));
        assert!(c.warm_up, "warm-up is on by default");
        assert_eq!(c.roots, Roots::System);
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in [
            "SONDEO_TABLE",
            "SONDEO_API_KEYS_SECRET_ARN",
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
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("SONDEO_WARM_UP", "1"));
        let err = error(&pairs);
        assert!(
            err.starts_with("environment variable SONDEO_WARM_UP: "),
            "{err}"
        );
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(LAMBDA);
        MetricsConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
