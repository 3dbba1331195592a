//! One event (an alarm's state change or the schedule) → the guarded functions reconciled with
//! the flood alarms' current states.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use sondeo_domain::breaker::{
    handle as reconcile_on, BreakerConfig, FloodAlarms, GuardedFunctions, Reservation, Trigger,
};

fn describe(r: Reservation) -> Value {
    match r {
        Reservation::Unreserved => Value::Null,
        Reservation::Reserved(n) => json!(n),
    }
}

/// Reconciles on an event; a failed AWS call fails the invocation (Lambda retries it, and the
/// schedule runs again anyway), a bad event or setting is logged and answered, since retrying
/// cannot help. The answer lists each change (`null` = no reservation).
pub async fn handle(
    event: LambdaEvent<Value>,
    settings: &BreakerConfig,
    alarms: &dyn FloodAlarms,
    functions: &dyn GuardedFunctions,
) -> Result<Value, Error> {
    match reconcile_on(&event.payload, settings, alarms, functions).await {
        Ok(outcome) => {
            let trigger = match &outcome.trigger {
                Trigger::Schedule => "schedule".to_string(),
                Trigger::Alarm(change) => format!("{} {:?}", change.alarm_name, change.state),
            };
            let done = &outcome.reconciled;
            let steps: Vec<Value> = done
                .steps
                .iter()
                .map(|s| {
                    json!({"function": s.function, "flooded": s.flooded,
                        "from": describe(s.from), "to": describe(s.to)})
                })
                .collect();
            if !done.steps.is_empty() || !done.refused.is_empty() || !done.settled {
                tracing::warn!(
                    trigger = %trigger,
                    steps = ?done.steps,
                    refused = ?done.refused,
                    settled = done.settled,
                    "flood breaker changed reserved concurrency"
                );
            } else {
                tracing::info!(trigger = %trigger, "flood breaker: nothing to change");
            }
            for (function, reason) in &done.refused {
                tracing::error!(
                    function = %function,
                    reason = %reason,
                    "Lambda refused the flood cap; the account's concurrency quota is the only ceiling"
                );
            }
            Ok(json!({ "trigger": trigger, "steps": steps, "settled": done.settled }))
        }
        Err(e) if e.is_retryable() => Err(Error::from(e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "flood breaker ignored an event");
            Ok(json!({ "ignored": e.to_string() }))
        }
    }
}
