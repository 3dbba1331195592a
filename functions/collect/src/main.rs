//! `collect`: one-click link pages and their answers, and the submission API. Validates, then
//! enqueues to SQS and answers; the handler is `sondeo::web::collect::CollectApp`, shared with local mode.

use sondeo::cache::CachedSurveys;
use sondeo::config;
use sondeo::dynamo::DynamoStore;
use sondeo::lambda::{warm_up_dynamodb, warm_up_sqs};
use sondeo::sqs::SqsQueue;
use sondeo::web::collect::CollectApp;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo::lambda::init_tracing();
    let sdk = sondeo::lambda::sdk_config().await;
    let table = config::required("SONDEO_TABLE")?;
    let queue_url = config::required("SONDEO_QUEUE_URL")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // The link keys, and the connections the first request uses (DynamoDB, SQS), all at once.
    let (keyring, (), ()) = tokio::join!(
        config::link_keyring(&sdk),
        warm_up_dynamodb(&dynamodb, &table),
        warm_up_sqs(&sqs, &queue_url),
    );
    let store = DynamoStore::new(dynamodb, table);
    let app = CollectApp {
        surveys: Arc::new(CachedSurveys::new(Arc::new(store), Duration::from_secs(60))),
        queue: Arc::new(SqsQueue::new(sqs, queue_url)),
        keyring: keyring?,
        allowed_origins: config::allowed_origins(),
    };
    sondeo::lambda::run_http(|req| app.handle(req)).await
}
