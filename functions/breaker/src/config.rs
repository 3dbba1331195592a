//! The breaker function's configuration: every environment variable it reads, read once at init.

use sondeo_aws::lambda::TRACING_VARIABLES;
use sondeo_aws::tls::{Roots, TRUST_VARIABLES};
use sondeo_domain::breaker::BreakerConfig;
use sondeo_domain::settings::{SettingError, Settings, Variable};

const GUARDED: &str = "SONDEO_GUARDED_FUNCTIONS";
const ALARMS: &str = "SONDEO_FLOOD_ALARMS";
const MAX_CONCURRENCY: &str = "SONDEO_MAX_CONCURRENCY";
const FLOOD_CONCURRENCY: &str = "SONDEO_FLOOD_CONCURRENCY";

/// Every environment variable the breaker function reads, its own and those read on its behalf
/// by shared code (the AWS SDK's own `AWS_*` variables aside).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        GUARDED,
        "comma-separated ARNs of the functions the breaker may cap",
    ),
    Variable::required(
        ALARMS,
        "comma-separated names of the flood alarms watching them",
    ),
    Variable::optional(
        MAX_CONCURRENCY,
        "reserved concurrency outside a flood (0 or unset: no reservation)",
    ),
    Variable::required(
        FLOOD_CONCURRENCY,
        "reserved concurrency during a flood (at least 1; never above the one outside)",
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
    /// The functions it may cap, their alarms, and both caps.
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
        // Each part checked alone first, so an error is blamed on its own variable.
        let guarded = settings.required(GUARDED)?;
        BreakerConfig::parse_guarded(&guarded).map_err(invalid(GUARDED))?;
        let alarms = settings.required(ALARMS)?;
        let normal = settings.optional(MAX_CONCURRENCY);
        let flood = settings.required(FLOOD_CONCURRENCY)?;
        BreakerConfig::parse(&guarded, &alarms, None, "1").map_err(invalid(ALARMS))?;
        BreakerConfig::parse(&guarded, &alarms, normal.as_deref(), "1")
            .map_err(invalid(MAX_CONCURRENCY))?;
        Ok(BreakerFunctionConfig {
            breaker: BreakerConfig::parse(&guarded, &alarms, normal.as_deref(), &flood)
                .map_err(invalid(FLOOD_CONCURRENCY))?,
            roots: Roots::from_settings(settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:sondeo-collect";
    const ALARM: &str = "sondeo-collect-flood";

    fn error(pairs: &[(&str, &str)]) -> String {
        BreakerFunctionConfig::from_settings(&Settings::from_pairs(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_lambda_environment_gives_every_setting() {
        let settings = Settings::from_pairs(&[
            (GUARDED, ARN),
            (ALARMS, ALARM),
            (MAX_CONCURRENCY, "25"),
            (FLOOD_CONCURRENCY, "5"),
        ]);
        let c = BreakerFunctionConfig::from_settings(&settings).unwrap();
        assert_eq!(c.breaker.guarded, [ARN]);
        assert_eq!(c.breaker.alarms, [ALARM]);
        assert_eq!(c.breaker.normal, Some(25));
        assert_eq!(c.breaker.flood, 5);
        assert_eq!(c.roots, Roots::Amazon);
    }

    #[test]
    fn missing_guarded_functions_are_named() {
        assert_eq!(
            error(&[
                (MAX_CONCURRENCY, "25"),
                (ALARMS, ALARM),
                (FLOOD_CONCURRENCY, "5")
            ]),
            "environment variable SONDEO_GUARDED_FUNCTIONS is not set"
        );
        assert_eq!(
            error(&[(GUARDED, ARN), (FLOOD_CONCURRENCY, "5")]),
            "environment variable SONDEO_FLOOD_ALARMS is not set"
        );
        assert_eq!(
            error(&[(GUARDED, ARN), (ALARMS, ALARM)]),
            "environment variable SONDEO_FLOOD_CONCURRENCY is not set"
        );
    }

    #[test]
    fn a_malformed_concurrency_cap_is_named() {
        let err = error(&[
            (GUARDED, ARN),
            (ALARMS, ALARM),
            (MAX_CONCURRENCY, "abc"),
            (FLOOD_CONCURRENCY, "abc"),
        ]);
        assert!(
            err.starts_with("environment variable SONDEO_MAX_CONCURRENCY: "),
            "{err}"
        );
    }

    #[test]
    fn a_flood_concurrency_of_zero_is_refused_and_named() {
        let err = error(&[(GUARDED, ARN), (ALARMS, ALARM), (FLOOD_CONCURRENCY, "0")]);
        assert!(
            err.starts_with("environment variable SONDEO_FLOOD_CONCURRENCY: "),
            "{err}"
        );
    }

    #[test]
    fn an_empty_alarm_list_is_named() {
        let err = error(&[(GUARDED, ARN), (ALARMS, " , "), (FLOOD_CONCURRENCY, "5")]);
        assert!(
            err.starts_with("environment variable SONDEO_FLOOD_ALARMS: "),
            "{err}"
        );
    }

    #[test]
    fn a_guarded_name_that_is_not_an_arn_is_blamed_on_its_own_variable() {
        let err = error(&[
            (GUARDED, "sondeo-collect"),
            (ALARMS, ""),
            (MAX_CONCURRENCY, "abc"),
            (FLOOD_CONCURRENCY, "5"),
        ]);
        assert!(
            err.starts_with("environment variable SONDEO_GUARDED_FUNCTIONS: "),
            "{err}"
        );
    }

    #[test]
    fn every_variable_read_is_declared() {
        let settings =
            Settings::from_pairs(&[(GUARDED, ARN), (ALARMS, ALARM), (FLOOD_CONCURRENCY, "5")]);
        BreakerFunctionConfig::from_settings(&settings).unwrap();
        assert_eq!(settings.undeclared(VARIABLES), Vec::<String>::new());
    }
}
