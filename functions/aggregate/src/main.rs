//! `aggregate`: the SQS consumer that applies response events to DynamoDB exactly once.

use aggregate::config::AggregateConfig;
use aggregate::handler;
use sondeo_aws::dynamo::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = AggregateConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    // No warm-up call here: nobody waits on the first batch (it sat up to 5 s in the batching
    // window already), so its connection is opened by that batch and init stays lean.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let level = config.metrics_level;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        handler::handle(&store, event, level)
    }))
    .await
}
