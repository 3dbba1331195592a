//! The flood breaker: while the request-rate alarm of a public function is in ALARM, that
//! function's reserved concurrency is held at a small cap (a cost ceiling: it keeps serving, at
//! most that many requests at once, and Lambda answers the rest 429 without billing them); when
//! the alarm is no longer in ALARM, the function's normal setting (the `MaxConcurrency` cap, or
//! no reservation) comes back. The breaker never reserves 0.
//!
//! Decisions come from the alarms' states read when the breaker runs, never from the event that
//! woke it: an event only says "look now". So a late, repeated or reordered ALARM or OK cannot
//! leave a function capped after its flood, and a lost one is made good by the periodic run (a
//! schedule), which reconciles the same way. Two runs racing each other cannot leave a stale
//! setting either: after changing anything a run reads the alarms again and repeats until what
//! it read after its last change needs no change (see [`reconcile`]).

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
    /// The state the alarm entered when the event was sent (logged, never acted on).
    pub state: AlarmState,
    /// When the alarm entered that state, in Unix milliseconds.
    pub at_ms: i64,
    /// The `FunctionName` dimensions of the alarm's metrics, in order, without repeats.
    pub functions: Vec<String>,
}

/// What woke the breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A flood alarm changed state (its Lambda action).
    Alarm(AlarmChange),
    /// The periodic reconcile (an EventBridge schedule).
    Schedule,
}

/// Errors of the flood breaker.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    /// The event is neither a CloudWatch alarm state change nor a scheduled event.
    #[error("not a CloudWatch alarm or scheduled event: {0}")]
    NotAnAlarm(String),
    /// The alarm's metrics name none of the functions the breaker may cap.
    #[error(
        "alarm {alarm} names no guarded function (its functions: {found:?}; guarded: {guarded:?})"
    )]
    NoGuardedFunction {
        /// The alarm's name.
        alarm: String,
        /// The `FunctionName` dimensions found in the alarm.
        found: Vec<String>,
        /// The functions the breaker may cap.
        guarded: Vec<String>,
    },
    /// A configured flood alarm was not found, or a guarded function has no flood alarm.
    #[error("flood alarms: {0}")]
    Alarms(String),
    /// The breaker's own settings are wrong.
    #[error("flood breaker configuration: {0}")]
    Config(String),
    /// Lambda refused a reservation the account cannot afford (its unreserved concurrency would
    /// drop below the minimum Lambda keeps); the account's quota is then the only ceiling.
    #[error("cannot reserve concurrency for {function}: {message}")]
    CannotReserve {
        /// The function's ARN.
        function: String,
        /// The service's error.
        message: String,
    },
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

/// Reads the alarm name, new state and watched functions from an alarm's Lambda action payload.
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

/// Reads what woke the breaker: an alarm's Lambda action payload, or an EventBridge scheduled
/// event (`"source": "aws.events"`, `"detail-type": "Scheduled Event"`).
pub fn parse_trigger(event: &Value) -> Result<Trigger, BreakerError> {
    if event["source"].as_str() == Some("aws.events")
        && event["detail-type"].as_str() == Some("Scheduled Event")
    {
        return Ok(Trigger::Schedule);
    }
    parse_alarm_event(event).map(Trigger::Alarm)
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

/// A function's reserved concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// No reservation: the function shares the account's unreserved pool.
    Unreserved,
    /// At most this many concurrent executions.
    Reserved(u32),
}

/// The breaker's settings: the functions it may cap, the alarms it reads, and both concurrencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// ARNs of the functions the breaker may cap.
    pub guarded: Vec<String>,
    /// Names of the flood alarms watching them.
    pub alarms: Vec<String>,
    /// The reservation outside a flood (`MaxConcurrency`); `None` = no reservation.
    pub normal: Option<u32>,
    /// The reservation during a flood: at least 1, never above `normal`.
    pub flood: u32,
}

/// A comma-separated list, trimmed, without empty entries.
fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl BreakerConfig {
    /// Parses the function ARNs and alarm names (comma-separated), the normal cap (`0` or empty
    /// = no reservation) and the flood cap (a whole number ≥ 1).
    pub fn parse(
        guarded: &str,
        alarms: &str,
        normal: Option<&str>,
        flood: &str,
    ) -> Result<BreakerConfig, BreakerError> {
        let guarded = Self::parse_guarded(guarded)?;
        let alarms = list(alarms);
        if alarms.is_empty() {
            return Err(BreakerError::Config(
                "no flood alarm names (a comma-separated list)".into(),
            ));
        }
        let normal = match normal.map(str::trim).filter(|s| !s.is_empty()) {
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
        let flood = match flood.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(BreakerError::Config(format!(
                    "the flood concurrency must be a whole number >= 1 (0 would switch the function off), not {flood:?}"
                )))
            }
        };
        Ok(BreakerConfig {
            guarded,
            alarms,
            normal,
            flood: normal.map_or(flood, |n| n.min(flood)),
        })
    }

    /// Parses the comma-separated function ARNs alone.
    pub fn parse_guarded(guarded: &str) -> Result<Vec<String>, BreakerError> {
        let guarded = list(guarded);
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
        Ok(guarded)
    }

    /// The reservation a function should have: the flood cap while flooded, else the normal one.
    pub fn wanted(&self, flooded: bool) -> Reservation {
        match (flooded, self.normal) {
            (true, _) => Reservation::Reserved(self.flood),
            (false, Some(n)) => Reservation::Reserved(n),
            (false, None) => Reservation::Unreserved,
        }
    }
}

/// The function name at the end of a Lambda function ARN (`arn:…:function:<name>`).
pub fn function_name(arn: &str) -> Option<&str> {
    let (head, name) = arn.rsplit_once(":function:")?;
    (head.starts_with("arn:") && !name.is_empty() && !name.contains(':')).then_some(name)
}

/// A flood alarm as CloudWatch describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodAlarm {
    /// The alarm's name.
    pub name: String,
    /// Its current state.
    pub state: AlarmState,
    /// The `FunctionName` dimensions of its metrics.
    pub functions: Vec<String>,
}

/// The flood alarms' current states (CloudWatch `DescribeAlarms`).
#[async_trait]
pub trait FloodAlarms: Send + Sync {
    /// The alarms of these names, as they are now; names not found are left out.
    async fn describe(&self, names: &[String]) -> Result<Vec<FloodAlarm>, BreakerError>;
}

/// The functions the breaker caps: their reserved concurrency.
#[async_trait]
pub trait GuardedFunctions: Send + Sync {
    /// The function's reservation now.
    async fn reservation(&self, function_arn: &str) -> Result<Reservation, BreakerError>;
    /// Sets the function's reservation (idempotent).
    async fn set_reservation(
        &self,
        function_arn: &str,
        to: Reservation,
    ) -> Result<(), BreakerError>;
}

/// Whether each guarded function is flooded (one of its alarms in ALARM), in `config.guarded`
/// order. INSUFFICIENT_DATA is not a flood: the alarms treat missing data as not breaching, so
/// it only happens before their first datapoint.
pub fn flooded(
    config: &BreakerConfig,
    alarms: &[FloodAlarm],
) -> Result<Vec<(String, bool)>, BreakerError> {
    let missing: Vec<&String> = config
        .alarms
        .iter()
        .filter(|name| !alarms.iter().any(|a| &a.name == *name))
        .collect();
    if !missing.is_empty() {
        return Err(BreakerError::Alarms(format!(
            "CloudWatch has no alarm named {missing:?}"
        )));
    }
    config
        .guarded
        .iter()
        .map(|arn| {
            let name = function_name(arn).unwrap_or(arn);
            let watching: Vec<&FloodAlarm> = alarms
                .iter()
                .filter(|a| a.functions.iter().any(|f| f == name))
                .collect();
            if watching.is_empty() {
                return Err(BreakerError::Alarms(format!(
                    "no flood alarm watches {name} (alarms read: {:?})",
                    config.alarms
                )));
            }
            Ok((
                arn.clone(),
                watching.iter().any(|a| a.state == AlarmState::Alarm),
            ))
        })
        .collect()
}

/// One change the breaker made to a function's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The function's ARN.
    pub function: String,
    /// Its reservation before.
    pub from: Reservation,
    /// Its reservation after.
    pub to: Reservation,
    /// Whether its flood alarm was in ALARM when read.
    pub flooded: bool,
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The changes made, in order.
    pub steps: Vec<Step>,
    /// Functions Lambda would not cap (the account cannot reserve), with its reason.
    pub refused: Vec<(String, String)>,
    /// How many times the alarms were read.
    pub reads: u32,
    /// Whether the last read needed no change (false only if the alarms kept changing).
    pub settled: bool,
}

/// Most reads of the alarms in one reconcile: more only happens while an alarm flaps, and the
/// next scheduled run settles it.
pub const MAX_READS: u32 = 4;

/// Sets every guarded function's reservation to what its alarms' current states call for.
/// After any change it reads the alarms again, until a read needs no change: a concurrent run
/// that applied an older reading before this run's last change is corrected by this run, and one
/// that applies after it is corrected by its own next read. Unchanged settings are not rewritten.
pub async fn reconcile(
    config: &BreakerConfig,
    alarms: &dyn FloodAlarms,
    functions: &dyn GuardedFunctions,
) -> Result<Reconciled, BreakerError> {
    let mut done = Reconciled::default();
    while done.reads < MAX_READS {
        done.reads += 1;
        let states = flooded(config, &alarms.describe(&config.alarms).await?)?;
        let mut changed = false;
        for (arn, flooded) in states {
            if done.refused.iter().any(|(f, _)| *f == arn) {
                continue;
            }
            let want = config.wanted(flooded);
            let now = functions.reservation(&arn).await?;
            if now == want {
                continue;
            }
            match functions.set_reservation(&arn, want).await {
                Ok(()) => {}
                Err(BreakerError::CannotReserve { message, .. }) => {
                    done.refused.push((arn, message));
                    continue;
                }
                Err(e) => return Err(e),
            }
            changed = true;
            done.steps.push(Step {
                function: arn,
                from: now,
                to: want,
                flooded,
            });
        }
        if !changed {
            done.settled = true;
            break;
        }
    }
    Ok(done)
}

/// What the breaker did for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What woke it.
    pub trigger: Trigger,
    /// What the reconcile did.
    pub reconciled: Reconciled,
}

/// Handles one event: checks it is a flood alarm of a guarded function or the schedule, then
/// [`reconcile`]s every guarded function from the alarms' current states (the event's own state
/// is not acted on, so its age and order do not matter).
pub async fn handle(
    event: &Value,
    config: &BreakerConfig,
    alarms: &dyn FloodAlarms,
    functions: &dyn GuardedFunctions,
) -> Result<Outcome, BreakerError> {
    let trigger = parse_trigger(event)?;
    if let Trigger::Alarm(change) = &trigger {
        let guarded = config
            .guarded
            .iter()
            .any(|arn| function_name(arn).is_some_and(|n| change.functions.iter().any(|f| f == n)));
        if !guarded {
            return Err(BreakerError::NoGuardedFunction {
                alarm: change.alarm_name.clone(),
                found: change.functions.clone(),
                guarded: config.guarded.clone(),
            });
        }
    }
    let reconciled = reconcile(config, alarms, functions).await?;
    Ok(Outcome {
        trigger,
        reconciled,
    })
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
