//! `collect`: one-click link pages and their answers, and the submission API. Validates, then
//! enqueues to SQS and answers; the handler is `sondeo::web::collect::CollectApp`, shared with local mode.

use sondeo::cache::CachedSurveys;
use sondeo::config;
use sondeo::dynamo::DynamoStore;
use sondeo::sqs::SqsQueue;
use sondeo::web::collect::CollectApp;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo::lambda::init_tracing();
    let sdk = sondeo::lambda::sdk_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config::required("SONDEO_TABLE")?,
    );
    let app = CollectApp {
        surveys: Arc::new(CachedSurveys::new(Arc::new(store), Duration::from_secs(60))),
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config::required("SONDEO_QUEUE_URL")?,
        )),
        keyring: config::link_keyring(&sdk).await?,
        allowed_origins: config::allowed_origins(),
    };
    sondeo::lambda::run_http(|req| app.handle(req)).await
}
