//! `breaker`: the flood breaker, invoked by the flood alarms of `collect` and `metrics`. On
//! ALARM it reserves 0 concurrency for the function (Lambda answers 429, nothing is billed); on
//! OK it restores the `MaxConcurrency` cap or removes the reservation. See `sondeo_domain::breaker`.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use sondeo_aws::breaker::LambdaFunctions;
use sondeo_domain::breaker::{handle, BreakerConfig};
use sondeo_domain::settings::{optional, required};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sondeo_aws::lambda::init_tracing();
    let sdk = sondeo_aws::lambda::sdk_config().await;
    let settings = BreakerConfig::parse(
        &required("SONDEO_GUARDED_FUNCTIONS")?,
        optional("SONDEO_MAX_CONCURRENCY").as_deref(),
    )?;
    let functions = LambdaFunctions::new(aws_sdk_lambda::Client::new(&sdk));
    let (settings, functions) = (&settings, &functions);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move {
            match handle(&event.payload, settings, functions).await {
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
                // A failed AWS call: fail the invocation so Lambda retries the event.
                Err(e) if e.is_retryable() => Err(Error::from(e.to_string())),
                // A bad event or setting: retrying cannot help; say so and finish.
                Err(e) => {
                    tracing::error!(error = %e, "flood breaker ignored an event");
                    Ok(json!({ "ignored": e.to_string() }))
                }
            }
        },
    ))
    .await
}
