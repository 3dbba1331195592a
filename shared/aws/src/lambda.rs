//! Lambda glue: tracing setup, AWS configuration and connection warm-up at init (compiled with
//! the `lambda` feature). HTTP functions hand their axum router to `lambda_http::run`.

use sondeo_domain::settings::{SettingError, Settings, Variable};
use std::time::{Duration, Instant};

/// Longest a warm-up call may delay init (an in-region handshake and call take tens of ms).
pub const WARM_UP_TIMEOUT: Duration = Duration::from_secs(1);

/// The variables [`init_tracing`] reads (through the runtime's default subscriber), for a function's `VARIABLES`.
pub const TRACING_VARIABLES: [Variable; 3] = [
    Variable::optional(
        "AWS_LAMBDA_LOG_LEVEL",
        "log level, set by Lambda from the function's logging configuration; wins over RUST_LOG",
    ),
    Variable::optional("RUST_LOG", "log filter when AWS_LAMBDA_LOG_LEVEL is unset"),
    Variable::optional(
        "AWS_LAMBDA_LOG_FORMAT",
        "JSON for structured log lines, set by Lambda from the function's logging configuration",
    ),
];

/// The warm-up switch's variable, for the `VARIABLES` of a function that warms up connections.
pub const WARM_UP_VARIABLE: Variable = Variable::optional(
    "SONDEO_WARM_UP",
    "on (default) or off: whether init opens the connections the first request uses",
);

/// Whether init opens connections: `SONDEO_WARM_UP` is `on` (the default) or `off` (to measure init without them).
pub fn warm_up_setting(settings: &Settings) -> Result<bool, SettingError> {
    settings.switch(WARM_UP_VARIABLE.name, true)
}

/// Structured logs: JSON when Lambda's log format is JSON, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_tracing() {
    lambda_http::tracing::init_default_subscriber();
}

/// The AWS configuration, loaded once per process with the given roots of trust (endpoints from the SDK's environment variables).
pub async fn sdk_config(roots: crate::tls::Roots) -> aws_config::SdkConfig {
    crate::tls::config_loader_with(roots).load().await
}

/// Opens the DynamoDB connection at init (a GetItem of a key no item has), so the first request skips the TCP and TLS handshakes; bounded by [`WARM_UP_TIMEOUT`], logs instead of failing. The caller decides whether to warm up at all ([`warm_up_setting`]).
pub async fn warm_up_dynamodb(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let call = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("warm-up".into()))
        .key("sk", AttributeValue::S("warm-up".into()))
        .projection_expression("pk")
        .send();
    warm_up("dynamodb", call).await;
}

/// Opens the SQS connection at init (GetQueueAttributes for the queue's ARN), like [`warm_up_dynamodb`].
pub async fn warm_up_sqs(client: &aws_sdk_sqs::Client, queue_url: &str) {
    let call = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send();
    warm_up("sqs", call).await;
}

async fn warm_up<T, E: std::error::Error>(
    service: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) {
    let started = Instant::now();
    match tokio::time::timeout(WARM_UP_TIMEOUT, call).await {
        Ok(Ok(_)) => tracing::debug!(
            service,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connection opened at init"
        ),
        // An error answer still leaves the connection open; a refused call means a wrong policy.
        Ok(Err(e)) => tracing::warn!(
            service,
            error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
            "warm-up call failed; the first request may open its own connection"
        ),
        Err(_) => tracing::warn!(
            service,
            timeout_ms = WARM_UP_TIMEOUT.as_millis() as u64,
            "warm-up call timed out; the first request opens its own connection"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

    fn dynamodb_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(crate::tls::https_client())
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    #[tokio::test]
    async fn warm_up_gives_up_at_its_timeout_when_the_service_never_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts connections and never answers.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let started = Instant::now();
        warm_up_dynamodb(&dynamodb_at(&format!("http://{addr}")), "table").await;
        let took = started.elapsed();
        silent.abort();
        assert!(
            took >= WARM_UP_TIMEOUT && took < WARM_UP_TIMEOUT + Duration::from_secs(5),
            "took {took:?}"
        );
    }

    #[tokio::test]
    async fn warm_up_returns_without_failing_when_the_connection_is_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port(); // closed again: nothing listens there
        let started = Instant::now();
        warm_up_dynamodb(&dynamodb_at(&format!("http://127.0.0.1:{port}")), "table").await;
        assert!(started.elapsed() < WARM_UP_TIMEOUT + Duration::from_secs(5));
    }
}
