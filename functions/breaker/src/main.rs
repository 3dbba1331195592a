//! `breaker`: the flood breaker's composition root (see the crate documentation).

use breaker::config::BreakerFunctionConfig;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use sondeo_aws::breaker::{CloudWatchAlarms, LambdaFunctions};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sondeo_aws::lambda::init_tracing();
    let config = BreakerFunctionConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let functions = LambdaFunctions::new(aws_sdk_lambda::Client::new(&sdk));
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&sdk));
    let (settings, alarms, functions) = (&config.breaker, &alarms, &functions);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            breaker::handler::handle(event, settings, alarms, functions)
        },
    ))
    .await
}
