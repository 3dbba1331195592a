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
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config::required("SONDEO_TABLE")?,
    ));
    let app = AdminApp {
        surveys: store.clone(),
        counters: store,
        api_keys: config::api_keys(&sdk).await?,
        keyring: config::link_keyring(&sdk).await?,
        base_url: config::optional("SONDEO_BASE_URL"),
    };
    sondeo::lambda::run_http(|req| app.handle(req)).await
}
