//! The webhooks function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::{warm_up_setting, TRACING_VARIABLES, WARM_UP_VARIABLE};
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::settings::{SettingError, Settings, Variable};

/// Every environment variable the webhooks function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "SONDEO_TABLE",
        "the DynamoDB table holding connections, invitations and the suppression list",
    ),
    Variable::required(
        "SONDEO_MAIL_FUNCTION_ARN",
        "ARN of the mail function each invitation's one-time schedule invokes",
    ),
    Variable::required(
        "SONDEO_SCHEDULER_ROLE_ARN",
        "ARN of the role EventBridge Scheduler assumes to invoke the mail function",
    ),
    Variable::optional(
        "SONDEO_SCHEDULE_GROUP",
        "EventBridge Scheduler group of the invitation schedules (default: the default group)",
    ),
    WARM_UP_VARIABLE,
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the webhooks function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksConfig {
    /// The DynamoDB table.
    pub table: String,
    /// The mail function, target of the invitation schedules.
    pub mail_function_arn: String,
    /// The role the scheduler assumes.
    pub scheduler_role_arn: String,
    /// The schedule group, when not the default one.
    pub schedule_group: Option<String>,
    /// Whether init opens the DynamoDB connection.
    pub warm_up: bool,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl WebhooksConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<WebhooksConfig, SettingError> {
        WebhooksConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<WebhooksConfig, SettingError> {
        Ok(WebhooksConfig {
            table: settings.required("SONDEO_TABLE")?,
            mail_function_arn: settings.required("SONDEO_MAIL_FUNCTION_ARN")?,
            scheduler_role_arn: settings.required("SONDEO_SCHEDULER_ROLE_ARN")?,
            schedule_group: settings.optional("SONDEO_SCHEDULE_GROUP"),
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
        (
            "SONDEO_MAIL_FUNCTION_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:sondeo-mail",
        ),
        (
            "SONDEO_SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/sondeo-scheduler",
        ),
    ];

    #[test]
    fn a_lambda_environment_gives_every_setting_and_each_missing_one_is_named() {
        let c = WebhooksConfig::from_settings(&Settings::from_pairs(LAMBDA)).unwrap();
        assert_eq!(c.table, "sondeo");
        assert!(c.mail_function_arn.ends_with(":function:sondeo-mail"));
        assert!(c.scheduler_role_arn.ends_with(":role/sondeo-scheduler"));
        assert_eq!(c.schedule_group, None);
        for (name, _) in LAMBDA {
            let pairs: Vec<_> = LAMBDA.iter().copied().filter(|(k, _)| k != name).collect();
            let err = WebhooksConfig::from_settings(&Settings::from_pairs(&pairs))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("environment variable {name} is not set"));
        }
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(LAMBDA);
        WebhooksConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
