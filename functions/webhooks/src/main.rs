//! `webhooks`: store order webhooks → invitations on EventBridge Scheduler. The handler is
//! `sondeo_http::webhooks::WebhookApp`, shared with local mode.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::scheduler::EventBridgeScheduler;
use sondeo_http::webhooks::WebhookApp;
use std::sync::Arc;
use webhooks::config::WebhooksConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = WebhooksConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    if config.warm_up {
        sondeo_aws::lambda::warm_up_dynamodb(&dynamodb, &config.table).await;
    }
    let store = Arc::new(DynamoStore::new(dynamodb, config.table));
    let scheduler = EventBridgeScheduler::new(
        aws_sdk_scheduler::Client::new(&sdk),
        config.mail_function_arn,
        config.scheduler_role_arn,
        config.schedule_group,
    );
    let app = WebhookApp {
        connections: store.clone(),
        surveys: store.clone(),
        invitations: store.clone(),
        suppressions: store,
        scheduler: Arc::new(scheduler),
    };
    lambda_http::run(sondeo_http::webhooks::router(app)).await
}
