//! AWS SDK configuration shared by every process: one HTTPS client (rustls with ring) and the
//! SDK's own environment-driven settings (region, credentials, `AWS_ENDPOINT_URL…`).

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The HTTPS client every SDK client uses: rustls with the ring crypto provider and the system's roots.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration loaded from the environment, with the shared HTTPS client.
pub async fn sdk_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// A configuration loader with the shared HTTPS client, to add settings to before loading.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}
