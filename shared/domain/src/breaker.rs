//! The flood breaker: when the request-rate alarm of a public function fires, that function's
//! reserved concurrency goes to 0, so Lambda answers every request 429 without running (or
//! billing) it; when the alarm is back to OK, the configured cap (or none) is restored.
//!
//! Alarm events can arrive late or twice (retries). Each function records the alarm-state time
//! it last applied (a tag on the function), and an event no newer than that is skipped, so a
//! late ALARM cannot switch a function off after a later OK, nor a late OK switch it back on.

use async_trait::async_trait;
use serde_json::Value;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

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
    /// When the alarm entered that state, in Unix milliseconds.
    pub at_ms: i64,
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
    #[error(
        "alarm {alarm} names no guarded function (its functions: {found:?}; guarded: {guarded:?})"
    )]
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
    let raw_time = data["state"]["timestamp"]
        .as_str()
        .ok_or_else(|| BreakerError::NotAnAlarm("no alarmData.state.timestamp".into()))?;
    let at_ms = parse_timestamp(raw_time).ok_or_else(|| {
        BreakerError::NotAnAlarm(format!("unreadable state timestamp {raw_time:?}"))
    })?;
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
        at_ms,
        functions,
    })
}

/// Parses CloudWatch's alarm timestamps (`2026-11-23T17:00:00.490+0000`), and the same with `Z`,
/// into Unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    const WITH_OFFSET: &[BorrowedFormatItem<'_>] = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][offset_minute]"
    );
    const IN_UTC: &[BorrowedFormatItem<'_>] = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]Z"
    );
    let at = OffsetDateTime::parse(s, WITH_OFFSET)
        .or_else(|_| PrimitiveDateTime::parse(s, IN_UTC).map(PrimitiveDateTime::assume_utc))
        .ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The breaker's settings: the functions it may throttle and the cap to restore afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// ARNs of the functions the breaker may throttle.
    pub guarded: Vec<String>,
    /// The reserved concurrency to restore on OK; `None` removes the reservation.
    pub cap: Option<u32>,
}

impl BreakerConfig {
    /// Parses a comma-separated list of function ARNs and the cap (`0` or empty = no cap).
    pub fn parse(guarded: &str, cap: Option<&str>) -> Result<BreakerConfig, BreakerError> {
        let guarded: Vec<String> = guarded
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if guarded.is_empty() {
            return Err(BreakerError::Config(
                "no guarded function ARNs (a comma-separated list)".into(),
            ));
        }
        if let Some(bad) = guarded.iter().find(|a| function_name(a).is_none()) {
            return Err(BreakerError::Config(format!(
                "{bad:?} is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)"
            )));
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

/// The function name at the end of a Lambda function ARN (`arn:…:function:<name>`).
pub fn function_name(arn: &str) -> Option<&str> {
    let (head, name) = arn.rsplit_once(":function:")?;
    (head.starts_with("arn:") && !name.is_empty() && !name.contains(':')).then_some(name)
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

/// The functions the breaker switches: their reserved concurrency, and the alarm-state time
/// each last had applied.
#[async_trait]
pub trait GuardedFunctions: Send + Sync {
    /// Reserves `n` concurrent executions for the function (0 = turn every request away).
    async fn reserve(&self, function_arn: &str, n: u32) -> Result<(), BreakerError>;
    /// Removes the function's reservation (it then shares the account's unreserved pool).
    async fn unreserve(&self, function_arn: &str) -> Result<(), BreakerError>;
    /// The alarm-state time (Unix ms) last applied to the function, if any.
    async fn last_applied(&self, function_arn: &str) -> Result<Option<i64>, BreakerError>;
    /// Records that the alarm state of `at_ms` has been applied to the function.
    async fn record_applied(&self, function_arn: &str, at_ms: i64) -> Result<(), BreakerError>;
}

/// What the breaker did for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The alarm's name.
    pub alarm: String,
    /// The state the event carried.
    pub state: AlarmState,
    /// The steps applied, in order.
    pub steps: Vec<Step>,
    /// Functions skipped because a newer (or the same) alarm state was already applied to them.
    pub stale: Vec<String>,
}

/// Handles one alarm event: applies [`plan`] to each guarded function the alarm watches, unless
/// that function already had this or a newer alarm state applied. Every step is idempotent, and
/// the time is recorded after the step, so a retry after a failure is safe.
pub async fn handle(
    event: &Value,
    config: &BreakerConfig,
    functions: &dyn GuardedFunctions,
) -> Result<Outcome, BreakerError> {
    let change = parse_alarm_event(event)?;
    let targets: Vec<String> = config
        .guarded
        .iter()
        .filter(|arn| function_name(arn).is_some_and(|n| change.functions.iter().any(|f| f == n)))
        .cloned()
        .collect();
    if targets.is_empty() {
        return Err(BreakerError::NoGuardedFunction {
            alarm: change.alarm_name,
            found: change.functions,
            guarded: config.guarded.clone(),
        });
    }
    let mut steps = Vec::new();
    let mut stale = Vec::new();
    for arn in targets {
        if functions
            .last_applied(&arn)
            .await?
            .is_some_and(|last| last >= change.at_ms)
        {
            stale.push(arn);
            continue;
        }
        for step in plan(change.state, std::slice::from_ref(&arn), config) {
            match &step {
                Step::Throttle { function } => functions.reserve(function, 0).await?,
                Step::Restore {
                    function,
                    cap: Some(n),
                } => functions.reserve(function, *n).await?,
                Step::Restore {
                    function,
                    cap: None,
                } => functions.unreserve(function).await?,
            }
            steps.push(step);
        }
        if change.state != AlarmState::InsufficientData {
            functions.record_applied(&arn, change.at_ms).await?;
        }
    }
    Ok(Outcome {
        alarm: change.alarm_name,
        state: change.state,
        steps,
        stale,
    })
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
