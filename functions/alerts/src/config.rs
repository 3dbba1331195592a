//! The alerts function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::TRACING_VARIABLES;
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::addresses::AddressAllowlist;
use sondeo_domain::settings::{SettingError, Settings, Variable};

/// Every environment variable the alerts function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "SONDEO_TABLE",
        "the DynamoDB table holding alert rules and the alert delivery log",
    ),
    Variable::required(
        "SONDEO_ALERT_QUEUE_URL",
        "the SQS queue later attempts of a delivery are put back on",
    ),
    Variable::optional(
        "SONDEO_ALERT_ALLOW_ADDRESSES",
        "comma-separated IP addresses or CIDR blocks alerts may call although private (on-premises receivers)",
    ),
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the alerts function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// The DynamoDB table.
    pub table: String,
    /// The alert queue's URL.
    pub queue_url: String,
    /// Private addresses alerts may call.
    pub allow: AddressAllowlist,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl AlertsConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<AlertsConfig, SettingError> {
        AlertsConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<AlertsConfig, SettingError> {
        let allow = settings
            .optional("SONDEO_ALERT_ALLOW_ADDRESSES")
            .unwrap_or_default();
        Ok(AlertsConfig {
            table: settings.required("SONDEO_TABLE")?,
            queue_url: settings.required("SONDEO_ALERT_QUEUE_URL")?,
            allow: AddressAllowlist::parse(&allow).map_err(|e| SettingError::Invalid {
                name: "SONDEO_ALERT_ALLOW_ADDRESSES",
                message: e.to_string(),
            })?,
            roots: Roots::from_settings(settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: &[(&str, &str)] = &[
        ("SONDEO_TABLE", "sondeo"),
        (
            "SONDEO_ALERT_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/alerts",
        ),
    ];

    #[test]
    fn a_lambda_environment_gives_every_setting_and_each_missing_one_is_named() {
        let c = AlertsConfig::from_settings(&Settings::from_pairs(LAMBDA)).unwrap();
        assert_eq!(c.table, "sondeo");
        assert!(c.allow.is_empty());
        for name in ["SONDEO_TABLE", "SONDEO_ALERT_QUEUE_URL"] {
            let pairs: Vec<(&str, &str)> =
                LAMBDA.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = AlertsConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn a_malformed_allowlist_is_named_and_a_good_one_is_used() {
        let mut pairs = LAMBDA.to_vec();
        pairs.push(("SONDEO_ALERT_ALLOW_ADDRESSES", "10.0.0.0/8, not-an-ip"));
        let err = AlertsConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap_err();
        assert!(
            err.to_string().contains("SONDEO_ALERT_ALLOW_ADDRESSES"),
            "{err}"
        );
        pairs.pop();
        pairs.push(("SONDEO_ALERT_ALLOW_ADDRESSES", "10.0.0.0/8"));
        let c = AlertsConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
        assert!(c.allow.allows("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(LAMBDA);
        AlertsConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
