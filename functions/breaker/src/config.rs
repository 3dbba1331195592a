//! The breaker function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::TRACING_VARIABLES;
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::breaker::BreakerConfig;
use sondeo_domain::settings::{SettingError, Settings, Variable};

const GUARDED: &str = "SONDEO_GUARDED_FUNCTIONS";
const MAX_CONCURRENCY: &str = "SONDEO_MAX_CONCURRENCY";

/// Every environment variable the breaker function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        GUARDED,
        "comma-separated ARNs of the functions the breaker may throttle",
    ),
    Variable::optional(
        MAX_CONCURRENCY,
        "reserved concurrency restored when a flood ends (0 or unset: no reservation)",
    ),
    TRUST_VARIABLES[0],
    TRUST_VARIABLES[1],
    TRACING_VARIABLES[0],
    TRACING_VARIABLES[1],
    TRACING_VARIABLES[2],
];

/// What the breaker function needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerFunctionConfig {
    /// The functions it may throttle and the cap it restores.
    pub breaker: BreakerConfig,
    /// The roots of trust of the AWS clients.
    pub roots: Roots,
}

impl BreakerFunctionConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<BreakerFunctionConfig, SettingError> {
        BreakerFunctionConfig::from_settings(&Settings::env())
    }

    /// The configuration from `settings`; an error names the variable that is missing or malformed.
    pub fn from_settings(settings: &Settings) -> Result<BreakerFunctionConfig, SettingError> {
        let invalid = |name: &'static str| {
            move |e: sondeo_domain::breaker::BreakerError| SettingError::Invalid {
                name,
                message: e.to_string(),
            }
        };
        let guarded = settings.required(GUARDED)?;
        // The list alone first, so a bad list is blamed on its own variable, not on the cap.
        BreakerConfig::parse(&guarded, None).map_err(invalid(GUARDED))?;
        let cap = settings.optional(MAX_CONCURRENCY);
        Ok(BreakerFunctionConfig {
            breaker: BreakerConfig::parse(&guarded, cap.as_deref())
                .map_err(invalid(MAX_CONCURRENCY))?,
            roots: Roots::from_settings(settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:sondeo-collect";

    fn error(pairs: &[(&str, &str)]) -> String {
        BreakerFunctionConfig::from_settings(&Settings::from_pairs(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_lambda_environment_gives_every_setting() {
        let settings = Settings::from_pairs(&[(GUARDED, ARN), (MAX_CONCURRENCY, "25")]);
        let c = BreakerFunctionConfig::from_settings(&settings).unwrap();
        assert_eq!(c.breaker.guarded, [ARN]);
        assert_eq!(c.breaker.cap, Some(25));
        assert_eq!(c.roots, Roots::Amazon);
    }

    #[test]
    fn missing_guarded_functions_are_named() {
        assert_eq!(
            error(&[(MAX_CONCURRENCY, "25")]),
            "environment variable SONDEO_GUARDED_FUNCTIONS is not set"
        );
    }

    #[test]
    fn a_malformed_concurrency_cap_is_named() {
        let err = error(&[(GUARDED, ARN), (MAX_CONCURRENCY, "abc")]);
        assert!(
            err.starts_with("environment variable SONDEO_MAX_CONCURRENCY: "),
            "{err}"
        );
    }

    #[test]
    fn a_guarded_name_that_is_not_an_arn_is_blamed_on_its_own_variable() {
        let err = error(&[(GUARDED, "sondeo-collect"), (MAX_CONCURRENCY, "abc")]);
        assert!(
            err.starts_with("environment variable SONDEO_GUARDED_FUNCTIONS: "),
            "{err}"
        );
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings = Settings::from_pairs(&[(GUARDED, ARN)]);
        BreakerFunctionConfig::from_settings(&settings).unwrap();
        let declared: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        for name in settings.asked() {
            assert!(
                declared.contains(&name.as_str()),
                "{name} is not in VARIABLES"
            );
        }
    }
}
