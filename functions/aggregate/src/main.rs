//! `aggregate`: the SQS consumer that applies response events to DynamoDB exactly once.

mod handler;

use sondeo::config;
use sondeo::dynamo::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sondeo::lambda::init_tracing();
    let sdk = sondeo::lambda::sdk_config().await;
    let table = config::required("SONDEO_TABLE")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // The first batch then finds its DynamoDB connection open.
    sondeo::lambda::warm_up_dynamodb(&dynamodb, &table).await;
    let store = DynamoStore::new(dynamodb, table);
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        handler::handle(&store, event)
    }))
    .await
}
