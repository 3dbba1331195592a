//! `metrics`: the API-key routes (metrics, surveys, link minting); the handler is
//! `sondeo_http::admin::AdminApp`, shared with local mode.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::secrets;
use sondeo_domain::settings::{optional, required};
use sondeo_http::admin::AdminApp;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo_aws::lambda::init_tracing();
    let sdk = sondeo_aws::lambda::sdk_config().await;
    let table = required("SONDEO_TABLE")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // Both secrets, and the DynamoDB connection the first request uses, all at once.
    let (api_keys, keyring, ()) = tokio::join!(
        secrets::api_keys(&sdk),
        secrets::link_keyring(&sdk),
        sondeo_aws::lambda::warm_up_dynamodb(&dynamodb, &table),
    );
    let store = Arc::new(DynamoStore::new(dynamodb, table));
    let app = AdminApp {
        surveys: store.clone(),
        counters: store,
        api_keys: api_keys?,
        keyring: keyring?,
        base_url: optional("SONDEO_BASE_URL"),
    };
    sondeo_aws::lambda::run_http(|req| app.handle(req)).await
}
