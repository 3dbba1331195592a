//! `collect`: one-click link pages and their answers, and the submission API. Validates, then
//! enqueues to SQS and answers; the handler is `sondeo_http::collect::CollectApp`, shared with local mode.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::lambda::{warm_up_dynamodb, warm_up_sqs};
use sondeo_aws::secrets;
use sondeo_aws::sqs::SqsQueue;
use sondeo_domain::cache::CachedSurveys;
use sondeo_domain::settings::{optional, required};
use sondeo_http::collect::CollectApp;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo_aws::lambda::init_tracing();
    let sdk = sondeo_aws::lambda::sdk_config().await;
    let table = required("SONDEO_TABLE")?;
    let queue_url = required("SONDEO_QUEUE_URL")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // The link keys, and the connections the first request uses (DynamoDB, SQS), all at once.
    let (keyring, (), ()) = tokio::join!(
        secrets::link_keyring(&sdk),
        warm_up_dynamodb(&dynamodb, &table),
        warm_up_sqs(&sqs, &queue_url),
    );
    let store = DynamoStore::new(dynamodb, table);
    let app = CollectApp {
        surveys: Arc::new(CachedSurveys::new(Arc::new(store), Duration::from_secs(60))),
        queue: Arc::new(SqsQueue::new(sqs, queue_url)),
        keyring: keyring?,
        allowed_origins: optional("SONDEO_ALLOWED_ORIGINS")
            .map(|v| sondeo_domain::settings::parse_origins(&v))
            .unwrap_or_default(),
    };
    sondeo_aws::lambda::run_http(|req| app.handle(req)).await
}
