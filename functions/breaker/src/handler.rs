//! One alarm state change → the breaker's plan applied to the guarded functions.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use sondeo_domain::breaker::{handle as apply_alarm, BreakerConfig, GuardedFunctions};

/// Applies an alarm event; a failed AWS call fails the invocation (Lambda retries it), a bad
/// event or setting is logged and answered, since retrying cannot help.
pub async fn handle(
    event: LambdaEvent<Value>,
    settings: &BreakerConfig,
    functions: &dyn GuardedFunctions,
) -> Result<Value, Error> {
    match apply_alarm(&event.payload, settings, functions).await {
        Ok(outcome) => {
            tracing::warn!(
                alarm = %outcome.alarm,
                state = ?outcome.state,
                steps = ?outcome.steps,
                stale = ?outcome.stale,
                "flood breaker applied the alarm's state"
            );
            Ok(json!({ "alarm": outcome.alarm, "steps": outcome.steps.len() }))
        }
        Err(e) if e.is_retryable() => Err(Error::from(e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "flood breaker ignored an event");
            Ok(json!({ "ignored": e.to_string() }))
        }
    }
}
