//! The API client behind the `sondeo` subcommands: in-process against the local stack, or over
//! HTTPS against a deployed stack; both go through the same `AdminApp` routes.

use crate::local::LocalStack;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::sync::Arc;

/// What stays as it is in a query value or a path segment: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query string (`k=v&k2=v2`) with every value percent-encoded.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One path segment, percent-encoded (a `/` in it cannot start another segment).
pub fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{status}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The API's message.
        message: String,
    },
    /// The API could not be reached or answered something that is not JSON.
    #[error("{0}")]
    Transport(String),
}

/// Where API calls go.
pub enum ApiClient {
    /// The local stack, in-process.
    Local(Arc<LocalStack>),
    /// A deployed stack.
    Remote {
        /// Base URL such as `https://abc.execute-api.eu-west-1.amazonaws.com`.
        base: String,
        /// API key.
        key: String,
    },
}

impl ApiClient {
    /// Calls a route with an optional JSON body; returns the JSON answer of a 2xx response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, answer) = match self {
            ApiClient::Local(stack) => {
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::HOST, "127.0.0.1")
                    .header(header::AUTHORIZATION, format!("Bearer {}", stack.api_key))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(bytes)
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                let resp = crate::server::dispatch(stack, req).await;
                (resp.status(), resp.into_body())
            }
            ApiClient::Remote { base, key } => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| ClientError::Transport(format!("no TLS root certificates: {e}")))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client: Client<_, Full<Bytes>> =
                    Client::builder(TokioExecutor::new()).build(https);
                let req = Request::builder()
                    .method(method)
                    .uri(format!("{}{path}", base.trim_end_matches('/')))
                    .header(header::AUTHORIZATION, format!("Bearer {key}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(bytes))
                    .map_err(|e| ClientError::Transport(format!("bad API URL '{base}': {e}")))?;
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| ClientError::Transport(format!("cannot reach {base}: {e}")))?;
                let status = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| ClientError::Transport(e.to_string()))?
                    .to_bytes();
                (status, body)
            }
        };
        let json: serde_json::Value = serde_json::from_slice(&answer).map_err(|_| {
            ClientError::Transport(format!(
                "the API answered {status} with a body that is not JSON"
            ))
        })?;
        if !status.is_success() {
            let message = json
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .unwrap_or("request failed")
                .to_string();
            return Err(ClientError::Api { status, message });
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_path_segments_are_percent_encoded_except_unreserved_characters() {
        assert_eq!(
            query_string(&[
                ("survey", "a b&c=d/é".into()),
                ("touchpoint", "post-purchase_1.x~".into())
            ]),
            "survey=a%20b%26c%3Dd%2F%C3%A9&touchpoint=post-purchase_1.x~"
        );
        assert_eq!(path_segment("../admin?x#y"), "..%2Fadmin%3Fx%23y");
        assert_eq!(query_string(&[]), "");
    }
}
