//! AWS SDK configuration shared by every process: one HTTPS client (rustls with ring) and the
//! SDK's own environment-driven settings (region, credentials, `AWS_ENDPOINT_URL…`).
//!
//! Trust: AWS service endpoints present certificates from Amazon Trust Services, so by default
//! the client trusts only those roots ([`AMAZON_ROOTS_PEM`], 5 certificates compiled in) instead
//! of parsing the system's bundle of ~145 at every cold start (8 of the 19 million instructions
//! an `aggregate` cold start took). Setting `SSL_CERT_FILE` or `SSL_CERT_DIR` switches to the
//! roots found there (an endpoint behind a private CA, a region with other roots, tests).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use sondeo_domain::settings::{Settings, Variable};

/// The Amazon Trust Services roots (Amazon Root CA 1–4, Starfield Services Root CA G2), PEM.
pub const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("amazon-roots.pem");

/// Where the HTTPS client takes its roots of trust from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// Only the compiled-in Amazon Trust Services roots (the default).
    Amazon,
    /// The roots in `SSL_CERT_FILE` / `SSL_CERT_DIR`, else the system's bundle.
    System,
}

/// The variables [`Roots::from_settings`] reads, for a function's `VARIABLES`.
pub const TRUST_VARIABLES: [Variable; 2] = [
    Variable::optional(
        "SSL_CERT_FILE",
        "a PEM bundle of roots to trust instead of the compiled-in Amazon roots",
    ),
    Variable::optional(
        "SSL_CERT_DIR",
        "a directory of roots to trust instead of the compiled-in Amazon roots",
    ),
];

impl Roots {
    /// The roots a configuration asks for: [`Roots::System`] when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set.
    pub fn from_settings(settings: &Settings) -> Roots {
        let [file, dir] = TRUST_VARIABLES;
        // Both are asked for, so a configuration's record of what it read names both.
        let (file, dir) = (settings.optional(file.name), settings.optional(dir.name));
        if file.is_some() || dir.is_some() {
            Roots::System
        } else {
            Roots::Amazon
        }
    }

    /// The roots this process uses, from its environment (see [`Roots::from_settings`]).
    pub fn from_env() -> Roots {
        Roots::from_settings(&Settings::env())
    }
}

/// The HTTPS client every SDK client uses: rustls with the ring crypto provider, roots from [`Roots::from_env`].
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    https_client_with(Roots::from_env())
}

/// The HTTPS client with the given roots of trust.
pub fn https_client_with(roots: Roots) -> aws_sdk_dynamodb::config::SharedHttpClient {
    let trust = match roots {
        Roots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
        Roots::System => TrustStore::default(),
    };
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Building a context only stores its settings; should that ever fail, keep the SDK's default roots.
        Err(_) => builder.build_https(),
    }
}

/// The SDK configuration loaded from the environment, with the shared HTTPS client.
pub async fn sdk_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// A configuration loader with the shared HTTPS client, to add settings to before loading.
///
/// When the credentials are in the environment (always, on Lambda), they are read from there
/// directly: the SDK's default chain would first build its web-identity, SSO, ECS and instance
/// metadata providers (an STS client among them), which a cold start pays for and never uses.
pub fn config_loader() -> aws_config::ConfigLoader {
    config_loader_with(Roots::from_env())
}

/// [`config_loader`] with the given roots of trust instead of those the environment names.
pub fn config_loader_with(roots: Roots) -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client_with(roots));
    if env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY") {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_certificate_variable_switches_to_the_system_roots() {
        assert_eq!(
            Roots::from_settings(&Settings::from_pairs(&[])),
            Roots::Amazon
        );
        for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            let settings = Settings::from_pairs(&[(name, "/etc/ssl/x")]);
            assert_eq!(Roots::from_settings(&settings), Roots::System);
        }
    }

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_certificates() {
        let pem = std::str::from_utf8(AMAZON_ROOTS_PEM).expect("ASCII");
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(pem.matches("-----END CERTIFICATE-----").count(), 5);
        for name in [
            "Amazon_Root_CA_1",
            "Amazon_Root_CA_2",
            "Amazon_Root_CA_3",
            "Amazon_Root_CA_4",
            "Starfield_Services_Root_Certificate_Authority_-_G2",
        ] {
            assert!(pem.contains(&format!("# {name}\n")), "{name} missing");
        }
    }

    #[tokio::test]
    async fn a_client_trusting_only_the_compiled_in_roots_builds_and_fails_cleanly_without_a_server(
    ) {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // The roots are parsed when the connector is built; a bad certificate would panic here.
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(https_client_with(Roots::Amazon))
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(conf);
        let err = client
            .list_tables()
            .send()
            .await
            .expect_err("nothing listens on the port");
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
            "{err:?}"
        );
    }
}
