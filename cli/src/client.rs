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

/// Why the `--api` URL cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiUrlError {
    /// Not a URL with a scheme and a host.
    #[error("'{url}' is not an API URL such as https://abc.execute-api.eu-west-1.amazonaws.com")]
    Malformed {
        /// The URL given.
        url: String,
    },
    /// Plain HTTP to a host that is not this machine: the API key would travel in clear text.
    #[error(
        "refusing to send the API key over plain HTTP to '{host}': use https://, \
         or http:// only to this machine (127.0.0.1, ::1 or localhost)"
    )]
    PlainHttp {
        /// The host named in the URL.
        host: String,
    },
    /// A scheme other than https or http.
    #[error("'{scheme}' is not supported in the API URL: use https://")]
    Scheme {
        /// The scheme named in the URL.
        scheme: String,
    },
}

/// Checks that an API base URL keeps the API key private: `https://` anywhere, `http://` only
/// to a loopback address (127.0.0.0/8, ::1, localhost).
pub fn check_api_url(url: &str) -> Result<(), ApiUrlError> {
    let malformed = || ApiUrlError::Malformed {
        url: url.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| malformed())?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(malformed());
    };
    if host.is_empty() {
        return Err(malformed());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(ApiUrlError::PlainHttp {
            host: host.to_string(),
        }),
        other => Err(ApiUrlError::Scheme {
            scheme: other.to_string(),
        }),
    }
}

/// Whether a URL host names this machine: 127.0.0.0/8, ::1 (in brackets) or `localhost`.
fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = bare.strip_suffix('.').unwrap_or(bare);
            name.eq_ignore_ascii_case("localhost")
        }
    }
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
    /// The API URL would expose the API key.
    #[error(transparent)]
    Url(#[from] ApiUrlError),
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
    /// A client for a deployed stack, refusing URLs that would send the key in clear text.
    pub fn remote(base: &str, key: &str) -> Result<ApiClient, ApiUrlError> {
        check_api_url(base)?;
        Ok(ApiClient::Remote {
            base: base.to_string(),
            key: key.to_string(),
        })
    }

    /// Calls a route with an optional JSON body; returns the JSON answer of a 2xx response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, answer) = self
            .exchange(method, path, "application/json", bytes)
            .await?;
        let json: serde_json::Value = serde_json::from_slice(&answer).map_err(|_| {
            ClientError::Transport(format!(
                "the API answered {status} with a body that is not JSON"
            ))
        })?;
        if !status.is_success() {
            return Err(api_error(status, &json));
        }
        Ok(json)
    }

    /// Posts a CSV body to a route; returns the CSV answer of a 2xx response.
    pub async fn post_csv(&self, path: &str, csv: Bytes) -> Result<Bytes, ClientError> {
        let (status, answer) = self
            .exchange(Method::POST, path, "text/csv; charset=utf-8", csv)
            .await?;
        if !status.is_success() {
            let json = serde_json::from_slice(&answer).unwrap_or_default();
            return Err(api_error(status, &json));
        }
        Ok(answer)
    }

    /// Sends one request and returns the answer's status and body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        Ok(match self {
            ApiClient::Local(stack) => {
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::HOST, "127.0.0.1")
                    .header(header::AUTHORIZATION, format!("Bearer {}", stack.api_key))
                    .header(header::CONTENT_TYPE, content_type)
                    .body(bytes)
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                let resp = crate::server::dispatch(stack, req).await;
                (resp.status(), resp.into_body())
            }
            ApiClient::Remote { base, key } => {
                // Checked again here: the variant can be built without `remote`.
                check_api_url(base)?;
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
                    .header(header::CONTENT_TYPE, content_type)
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
        })
    }
}

/// The error a non-2xx answer carries.
fn api_error(status: StatusCode, json: &serde_json::Value) -> ClientError {
    let message = json
        .pointer("/error/message")
        .and_then(|m| m.as_str())
        .unwrap_or("request failed")
        .to_string();
    ClientError::Api { status, message }
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

    #[test]
    fn https_is_accepted_anywhere_and_plain_http_only_to_loopback() {
        for ok in [
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "HTTPS://example.com/prod/",
            "http://127.0.0.1:8787",
            "http://127.9.8.7",
            "http://localhost:8787/",
            "http://LOCALHOST.",
            "http://[::1]:8787",
        ] {
            assert_eq!(check_api_url(ok), Ok(()), "{ok}");
        }
        for (url, host) in [
            ("http://example.com", "example.com"),
            ("http://10.0.0.5:8787", "10.0.0.5"),
            ("http://128.0.0.1", "128.0.0.1"),
            ("http://localhost.example.com", "localhost.example.com"),
            ("http://127.0.0.1.nip.io", "127.0.0.1.nip.io"),
            ("http://[::2]", "[::2]"),
            ("http://0.0.0.0:8787", "0.0.0.0"),
        ] {
            assert_eq!(
                check_api_url(url),
                Err(ApiUrlError::PlainHttp { host: host.into() }),
                "{url}"
            );
        }
        assert!(matches!(
            check_api_url("ftp://example.com"),
            Err(ApiUrlError::Scheme { .. })
        ));
        for bad in ["example.com", "/v1", "", "http://"] {
            assert!(
                matches!(check_api_url(bad), Err(ApiUrlError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_remote_client_built_by_hand_refuses_plain_http_before_connecting() {
        let client = ApiClient::Remote {
            base: "http://example.com".into(),
            key: "sk_secret".into(),
        };
        let err = client
            .call(Method::GET, "/v1/surveys", None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Url(ApiUrlError::PlainHttp { .. })),
            "{err}"
        );
    }
}
