//! The flood breaker: when the request-rate alarm of a public function fires, that function's
//! reserved concurrency goes to 0, so Lambda answers every request 429 without running (or
//! billing) it; when the alarm is back to OK, the configured cap (or none) is restored.
//!
//! The breaker acts on the alarm's current state, read from CloudWatch, not on the state the
//! event carries: a retried delivery of an old ALARM event must not throttle a function after
//! the flood has ended.

use async_trait::async_trait;
use serde_json::Value;

/// A CloudWatch alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    /// The metric is within its threshold.
    Ok,
    /// The metric breached its threshold.
    Alarm,
    /// Not enough data to tell.
    InsufficientData,
}

impl AlarmState {
    /// Parses CloudWatch's spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

/// What the breaker reads from a CloudWatch alarm's Lambda action payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// The alarm's name.
    pub alarm_name: String,
    /// The state the alarm entered when the event was sent.
    pub state: AlarmState,
    /// The `FunctionName` dimensions of the alarm's metrics, in order, without repeats.
    pub functions: Vec<String>,
}

/// Errors of the flood breaker.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    /// The event is not a CloudWatch alarm state change.
    #[error("not a CloudWatch alarm event: {0}")]
    NotAnAlarm(String),
    /// The alarm's metrics name none of the functions the breaker may throttle.
    #[error("alarm {alarm} names no guarded function (its functions: {found:?}; guarded: {guarded:?})")]
    NoGuardedFunction {
        /// The alarm's name.
        alarm: String,
        /// The `FunctionName` dimensions found in the alarm.
        found: Vec<String>,
        /// The functions the breaker may throttle.
        guarded: Vec<String>,
    },
    /// The breaker's own settings are wrong.
    #[error("flood breaker configuration: {0}")]
    Config(String),
    /// A call to CloudWatch or Lambda failed.
    #[error("{action} failed: {message}")]
    Aws {
        /// What was being done.
        action: String,
        /// The service's error.
        message: String,
    },
}

impl BreakerError {
    /// Whether retrying the same event can succeed (a failed AWS call), as opposed to a bad event or setting.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BreakerError::Aws { .. })
    }
}

/// Reads the alarm name, new state and guarded functions from an alarm's Lambda action payload.
pub fn parse_alarm_event(event: &Value) -> Result<AlarmChange, BreakerError> {
    let data = &event["alarmData"];
    let alarm_name = data["alarmName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| BreakerError::NotAnAlarm("no alarmData.alarmName".into()))?
        .to_string();
    let raw_state = data["state"]["value"]
        .as_str()
        .ok_or_else(|| BreakerError::NotAnAlarm("no alarmData.state.value".into()))?;
    let state = AlarmState::parse(raw_state)
        .ok_or_else(|| BreakerError::NotAnAlarm(format!("unknown alarm state {raw_state:?}")))?;
    let mut functions = Vec::new();
    for metric in data["configuration"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(name) = metric["metricStat"]["metric"]["dimensions"]["FunctionName"].as_str() {
            if !functions.iter().any(|f| f == name) {
                functions.push(name.to_string());
            }
        }
    }
    Ok(AlarmChange {
        alarm_name,
        state,
        functions,
    })
}

/// The breaker's settings: the functions it may throttle and the cap to restore afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Names of the functions the breaker may throttle.
    pub guarded: Vec<String>,
    /// The reserved concurrency to restore on OK; `None` removes the reservation.
    pub cap: Option<u32>,
}

impl BreakerConfig {
    /// Parses a comma-separated list of function names and the cap (`0` or empty = no cap).
    pub fn parse(guarded: &str, cap: Option<&str>) -> Result<BreakerConfig, BreakerError> {
        let guarded: Vec<String> = guarded
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if guarded.is_empty() {
            return Err(BreakerError::Config(
                "no guarded function names (a comma-separated list)".into(),
            ));
        }
        let cap = match cap.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(BreakerError::Config(format!(
                        "the concurrency cap must be a whole number >= 0, not {raw:?}"
                    )))
                }
            },
        };
        Ok(BreakerConfig { guarded, cap })
    }
}

/// One change to a function's reserved concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Reserve 0: Lambda turns every request away with 429.
    Throttle {
        /// The function's name.
        function: String,
    },
    /// Put back the configured cap, or remove the reservation when there is none.
    Restore {
        /// The function's name.
        function: String,
        /// The reserved concurrency to set; `None` removes it.
        cap: Option<u32>,
    },
}

/// The steps for `functions` when their alarm is in `state`: ALARM throttles, OK restores,
/// INSUFFICIENT_DATA changes nothing.
pub fn plan(state: AlarmState, functions: &[String], config: &BreakerConfig) -> Vec<Step> {
    functions
        .iter()
        .filter_map(|f| match state {
            AlarmState::Alarm => Some(Step::Throttle {
                function: f.clone(),
            }),
            AlarmState::Ok => Some(Step::Restore {
                function: f.clone(),
                cap: config.cap,
            }),
            AlarmState::InsufficientData => None,
        })
        .collect()
}

/// Reads an alarm's current state.
#[async_trait]
pub trait AlarmStates: Send + Sync {
    /// The alarm's state now; `None` when no alarm has that name.
    async fn state(&self, alarm: &str) -> Result<Option<AlarmState>, BreakerError>;
}

/// Changes a function's reserved concurrency.
#[async_trait]
pub trait FunctionConcurrency: Send + Sync {
    /// Reserves `n` concurrent executions for the function (0 = turn every request away).
    async fn reserve(&self, function: &str, n: u32) -> Result<(), BreakerError>;
    /// Removes the function's reservation (it then shares the account's unreserved pool).
    async fn unreserve(&self, function: &str) -> Result<(), BreakerError>;
}

/// What the breaker did for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The alarm's name.
    pub alarm: String,
    /// The state acted on (the alarm's current state).
    pub state: AlarmState,
    /// The state the event carried (differs from `state` for a late delivery).
    pub event_state: AlarmState,
    /// The steps applied, in order.
    pub steps: Vec<Step>,
}

/// Handles one alarm event: reads the alarm's current state and applies [`plan`] to the
/// guarded functions the alarm watches. Every step is idempotent, so a retry is safe.
pub async fn handle(
    event: &Value,
    config: &BreakerConfig,
    alarms: &dyn AlarmStates,
    concurrency: &dyn FunctionConcurrency,
) -> Result<Outcome, BreakerError> {
    let change = parse_alarm_event(event)?;
    let functions: Vec<String> = change
        .functions
        .iter()
        .filter(|f| config.guarded.contains(f))
        .cloned()
        .collect();
    if functions.is_empty() {
        return Err(BreakerError::NoGuardedFunction {
            alarm: change.alarm_name,
            found: change.functions,
            guarded: config.guarded.clone(),
        });
    }
    // A deleted alarm cannot hold a function throttled: treat it as OK.
    let state = alarms
        .state(&change.alarm_name)
        .await?
        .unwrap_or(AlarmState::Ok);
    let steps = plan(state, &functions, config);
    for step in &steps {
        match step {
            Step::Throttle { function } => concurrency.reserve(function, 0).await?,
            Step::Restore {
                function,
                cap: Some(n),
            } => concurrency.reserve(function, *n).await?,
            Step::Restore { function, cap: None } => concurrency.unreserve(function).await?,
        }
    }
    Ok(Outcome {
        alarm: change.alarm_name,
        state,
        event_state: change.state,
        steps,
    })
}

/// The AWS adapters: CloudWatch for alarm states, Lambda for reserved concurrency.
#[cfg(feature = "breaker")]
pub mod aws {
    use super::{AlarmState, AlarmStates, BreakerError, FunctionConcurrency};
    use async_trait::async_trait;

    fn aws_error(action: String, e: impl std::error::Error) -> BreakerError {
        BreakerError::Aws {
            action,
            message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
        }
    }

    /// Alarm states from CloudWatch `DescribeAlarms`.
    pub struct CloudWatchAlarms {
        client: aws_sdk_cloudwatch::Client,
    }

    impl CloudWatchAlarms {
        /// Alarm states read with this client.
        pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
            CloudWatchAlarms { client }
        }
    }

    #[async_trait]
    impl AlarmStates for CloudWatchAlarms {
        async fn state(&self, alarm: &str) -> Result<Option<AlarmState>, BreakerError> {
            let out = self
                .client
                .describe_alarms()
                .alarm_names(alarm)
                .send()
                .await
                .map_err(|e| aws_error(format!("reading alarm {alarm}"), e))?;
            let metric = out.metric_alarms().iter().find_map(|a| a.state_value());
            let composite = out.composite_alarms().iter().find_map(|a| a.state_value());
            Ok(metric
                .or(composite)
                .and_then(|s| AlarmState::parse(s.as_str())))
        }
    }

    /// Reserved concurrency through the Lambda API.
    pub struct LambdaConcurrency {
        client: aws_sdk_lambda::Client,
    }

    impl LambdaConcurrency {
        /// Reserved concurrency changed with this client.
        pub fn new(client: aws_sdk_lambda::Client) -> Self {
            LambdaConcurrency { client }
        }
    }

    #[async_trait]
    impl FunctionConcurrency for LambdaConcurrency {
        async fn reserve(&self, function: &str, n: u32) -> Result<(), BreakerError> {
            let n = i32::try_from(n).map_err(|_| {
                BreakerError::Config(format!("reserved concurrency {n} is out of range"))
            })?;
            self.client
                .put_function_concurrency()
                .function_name(function)
                .reserved_concurrent_executions(n)
                .send()
                .await
                .map_err(|e| aws_error(format!("reserving {n} for {function}"), e))?;
            Ok(())
        }

        async fn unreserve(&self, function: &str) -> Result<(), BreakerError> {
            self.client
                .delete_function_concurrency()
                .function_name(function)
                .send()
                .await
                .map_err(|e| aws_error(format!("removing {function}'s reservation"), e))?;
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
