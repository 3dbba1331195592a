//! `alerts`: the composition root (see the crate documentation).

use alerts::config::AlertsConfig;
use alerts::handler;
use sondeo_aws::alerts::SqsAlertQueue;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::alert_delivery::AlertWorker;
use sondeo_http::outbound::OutboundClient;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = AlertsConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let queue = SqsAlertQueue::new(aws_sdk_sqs::Client::new(&sdk), config.queue_url);
    let sender = OutboundClient::new(config.allow)?;
    let worker = AlertWorker {
        rules: &store,
        log: &store,
        queue: &queue,
        sender: &sender,
    };
    let worker = &worker;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        handler::handle(worker, event)
    }))
    .await
}
