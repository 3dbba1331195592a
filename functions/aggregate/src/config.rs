//! The aggregate function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::TRACING_VARIABLES;
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::settings::{SettingError, Settings, Variable};

/// Every environment variable the aggregate function reads, its own and those read on its
/// behalf by shared code (the AWS SDK's own `AWS_*` variables aside). It warms up nothing, so
/// it does not read `SONDEO_WARM_UP`.
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "SONDEO_TABLE",
        "the DynamoDB table holding response records and counters",
    ),
    Variable::optional(
        "SONDEO_ALERT_QUEUE_URL",
        "the SQS queue alert jobs go on (unset: no alerts are raised)",
    ),
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the aggregate function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateConfig {
    /// The DynamoDB table holding response records and counters.
    pub table: String,
    /// The alert queue's URL (None: no alerts are raised).
    pub alert_queue_url: Option<String>,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
    /// The `level` of the per-batch metrics line: Lambda's application log level (at least
    /// INFO), so that Lambda's log-level filter never drops it.
    pub metrics_level: &'static str,
}

/// The level a line needs so that Lambda's filter at `application_level` keeps it, never below INFO.
pub fn metrics_level(application_level: Option<&str>) -> &'static str {
    match application_level.map(str::to_ascii_uppercase).as_deref() {
        Some("WARN") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

impl AggregateConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<AggregateConfig, SettingError> {
        AggregateConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<AggregateConfig, SettingError> {
        Ok(AggregateConfig {
            table: settings.required("SONDEO_TABLE")?,
            alert_queue_url: settings.optional("SONDEO_ALERT_QUEUE_URL"),
            roots: Roots::from_settings(settings),
            metrics_level: metrics_level(settings.optional("AWS_LAMBDA_LOG_LEVEL").as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_environment_gives_every_setting() {
        let settings = Settings::from_pairs(&[("SONDEO_TABLE", "sondeo")]);
        let c = AggregateConfig::from_settings(&settings).unwrap();
        assert_eq!(c.table, "sondeo");
        assert_eq!(c.roots, Roots::Amazon);
        assert_eq!(c.metrics_level, "INFO");
    }

    #[test]
    fn the_metrics_line_is_kept_at_every_application_log_level() {
        for (configured, level) in [
            ("TRACE", "INFO"),
            ("DEBUG", "INFO"),
            ("INFO", "INFO"),
            ("WARN", "WARN"),
            ("warn", "WARN"),
            ("ERROR", "ERROR"),
            ("FATAL", "FATAL"),
        ] {
            let settings = Settings::from_pairs(&[
                ("SONDEO_TABLE", "sondeo"),
                ("AWS_LAMBDA_LOG_LEVEL", configured),
            ]);
            let c = AggregateConfig::from_settings(&settings).unwrap();
            assert_eq!(c.metrics_level, level, "{configured}");
        }
    }

    #[test]
    fn a_missing_table_is_named() {
        let err = AggregateConfig::from_settings(&Settings::from_pairs(&[("SONDEO_TABLE", "")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable SONDEO_TABLE is not set"
        );
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(&[("SONDEO_TABLE", "sondeo")]);
        AggregateConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
