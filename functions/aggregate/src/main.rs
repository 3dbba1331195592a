//! `aggregate`: the SQS consumer that applies response events to DynamoDB exactly once.

use aggregate::config::AggregateConfig;
use aggregate::handler::{self, AlertHook};
use sondeo_aws::alerts::SqsAlertQueue;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::alert_delivery::{CachedAlertRules, RULES_TTL};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = AggregateConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    // No warm-up call here: nobody waits on the first batch (it sat up to 5 s in the batching
    // window already), so its connection is opened by that batch and init stays lean.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let level = config.metrics_level;
    // Alerts: rules cached a minute per survey, jobs on their own queue.
    let rules = CachedAlertRules::new(Arc::new(store.clone()), RULES_TTL);
    let queue = config
        .alert_queue_url
        .map(|url| SqsAlertQueue::new(aws_sdk_sqs::Client::new(&sdk), url));
    let hook = queue.as_ref().map(|queue| AlertHook {
        rules: &rules,
        queue,
    });
    let hook = hook.as_ref();
    let store = &store;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        handler::handle_with_alerts(store, hook, event, level)
    }))
    .await
}
