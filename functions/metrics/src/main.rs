//! `metrics`: the API-key routes (metrics, surveys, link minting); the handler is
//! `sondeo::web::admin::AdminApp`, shared with local mode.

use sondeo::config;
use sondeo::dynamo::DynamoStore;
use sondeo::web::admin::AdminApp;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo::lambda::init_tracing();
    let sdk = sondeo::lambda::sdk_config().await;
    let table = config::required("SONDEO_TABLE")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // Both secrets, and the DynamoDB connection the first request uses, all at once.
    let (api_keys, keyring, ()) = tokio::join!(
        config::api_keys(&sdk),
        config::link_keyring(&sdk),
        sondeo::lambda::warm_up_dynamodb(&dynamodb, &table),
    );
    let store = Arc::new(DynamoStore::new(dynamodb, table));
    let app = AdminApp {
        surveys: store.clone(),
        counters: store,
        api_keys: api_keys?,
        keyring: keyring?,
        base_url: config::optional("SONDEO_BASE_URL"),
    };
    sondeo::lambda::run_http(|req| app.handle(req)).await
}
