//! `collect`: one-click link pages and their answers, and the submission API. Validates, then
//! enqueues to SQS and answers; the handler is `sondeo_http::collect::CollectApp`, shared with local mode.

use collect::config::CollectConfig;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::lambda::{warm_up_dynamodb, warm_up_sqs};
use sondeo_aws::secrets;
use sondeo_aws::sqs::SqsQueue;
use sondeo_domain::cache::CachedSurveys;
use sondeo_http::collect::CollectApp;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = CollectConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // The link keys, and the connections the first request uses (DynamoDB, SQS), all at once.
    let warm_up = async {
        if config.warm_up {
            tokio::join!(
                warm_up_dynamodb(&dynamodb, &config.table),
                warm_up_sqs(&sqs, &config.queue_url),
            );
        }
    };
    let (keyring, ()) = tokio::join!(secrets::link_keyring(&sdk, &config.link_keys), warm_up);
    let store = Arc::new(DynamoStore::new(dynamodb, config.table));
    let app = CollectApp {
        surveys: Arc::new(CachedSurveys::new(store.clone(), Duration::from_secs(60))),
        suppressions: store,
        queue: Arc::new(SqsQueue::new(sqs, config.queue_url)),
        keyring: keyring?,
        allowed_origins: config.allowed_origins,
    };
    lambda_http::run(sondeo_http::collect::router(app)).await
}
