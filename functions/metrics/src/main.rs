//! `metrics`: the API-key routes (metrics, surveys, link minting); the handler is
//! `sondeo_http::admin::AdminApp`, shared with local mode.

use metrics::config::MetricsConfig;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::secrets;
use sondeo_http::admin::{AdminApp, AlertsConfig, OrdersConfig};
use sondeo_http::insights::ExportLimits;
use std::sync::Arc;

/// One CSV export request streams at most 190 MiB (a streamed Lambda answer may be 200 MB) for
/// at most 24 s (the template's Timeout is 30 s); past either it ends with a row giving the
/// cursor to continue from.
const EXPORT_LIMITS: ExportLimits = ExportLimits {
    bytes: Some(190 << 20),
    time: Some(std::time::Duration::from_secs(24)),
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    sondeo_aws::lambda::init_tracing();
    let config = MetricsConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    // Both secrets, and the DynamoDB connection the first request uses, all at once.
    let warm_up = async {
        if config.warm_up {
            sondeo_aws::lambda::warm_up_dynamodb(&dynamodb, &config.table).await;
        }
    };
    let (api_keys, keyring, ()) = tokio::join!(
        secrets::api_keys(&sdk, &config.api_keys),
        secrets::link_keyring(&sdk, &config.link_keys),
        warm_up,
    );
    let store = Arc::new(DynamoStore::new(dynamodb, config.table));
    let imports = config.queue_url.map(|url| {
        let queue: Arc<dyn sondeo_domain::ports::ResponseQueue> = Arc::new(
            sondeo_aws::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url),
        );
        queue
    });
    let app = AdminApp {
        surveys: store.clone(),
        suppressions: store.clone(),
        orders: OrdersConfig {
            connections: store.clone(),
            invitations: store.clone(),
            webhook_base_url: config.webhook_base_url,
        },
        responses: store.clone(),
        alerts: Some(AlertsConfig {
            rules: store.clone(),
            allow: config.alert_allow,
        }),
        counters: store,
        export_limits: EXPORT_LIMITS,
        api_keys: api_keys?,
        keyring: keyring?,
        base_url: config.base_url,
        imports,
    };
    // Streamed (the URL's InvokeMode is RESPONSE_STREAM): `GET /v1/responses.csv` sends rows as
    // they are read and `POST /v1/links/bulk` as they are minted; every other answer is one chunk.
    lambda_http::run_with_streaming_response(sondeo_http::admin::router(app)).await
}
