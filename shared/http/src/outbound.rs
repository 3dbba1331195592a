//! Outbound alert deliveries that cannot be turned against the deployment's own network (SSRF).
//!
//! Every hop is checked before it is requested: the scheme (HTTPS; plain HTTP only to allowed
//! addresses), then the host resolved here, and refused if ANY of its addresses is loopback,
//! private, link-local (cloud metadata), shared, documentation, multicast or otherwise special
//! (`sondeo_domain::addresses`), unless `SONDEO_ALERT_ALLOW_ADDRESSES` allows it. The connection
//! then goes to a vetted address itself (pinned: a DNS answer that changes between the check and
//! the connection is never used), with the original name for TLS (SNI, certificate) and `Host`.
//! Redirects are followed at most [`MAX_REDIRECTS`] times, each hop checked the same way.
//! Timeouts: [`CONNECT_TIMEOUT`] per connection, [`TOTAL_TIMEOUT`] per post; at most
//! [`MAX_RESPONSE_BYTES`] of an answer are read.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use sondeo_domain::addresses::{refusal, AddressAllowlist};
use sondeo_domain::ports::{AlertSender, SendError};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest wait for one TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one post, redirects included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 3;
/// Most bytes of an answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The environment variable naming addresses alerts may call although they are private.
pub const ALLOW_ADDRESSES_VARIABLE: &str = "SONDEO_ALERT_ALLOW_ADDRESSES";

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Posts alert payloads (see the module documentation).
#[derive(Clone)]
pub struct OutboundClient {
    allow: AddressAllowlist,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl OutboundClient {
    /// A client trusting the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured) and
    /// calling private addresses only when `allow` names them.
    pub fn new(allow: AddressAllowlist) -> Result<OutboundClient, OutboundError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            // Plain-HTTP receivers on allowed addresses still work; HTTPS ones fail their
            // handshake (and are retried) until roots are installed.
            let why = found
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "the system has none".into());
            tracing::warn!(reason = %why, "no trusted root certificates: HTTPS alert endpoints will fail");
        }
        OutboundClient::with_roots(allow, roots)
    }

    /// A client trusting exactly `roots`.
    pub fn with_roots(
        allow: AddressAllowlist,
        roots: rustls::RootCertStore,
    ) -> Result<OutboundClient, OutboundError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(OutboundClient {
            allow,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The addresses `url` may be called at, or why it may not be called at all.
    pub async fn vet(&self, url: &url::Url) -> Result<Vec<SocketAddr>, SendError> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(SendError::Refused(format!(
                    "scheme '{}' is not https",
                    other.chars().take(16).collect::<String>()
                )))
            }
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| SendError::Refused("the URL has no port".into()))?;
        let addrs: Vec<SocketAddr> = match url.host() {
            None => return Err(SendError::Refused("the URL has no host".into())),
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => {
                let found =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((name, port)))
                        .await
                        .map_err(|_| SendError::Retryable("DNS lookup timed out".into()))?
                        .map_err(|e| SendError::Retryable(format!("DNS lookup failed: {e}")))?;
                found.collect()
            }
        };
        if addrs.is_empty() {
            return Err(SendError::Retryable("the name has no address".into()));
        }
        for a in &addrs {
            if let Some(why) = refusal(a.ip(), &self.allow) {
                return Err(SendError::Refused(format!(
                    "{} resolves to {} ({why})",
                    host_of(url),
                    a.ip()
                )));
            }
            if !https && !self.allow.allows(a.ip()) {
                return Err(SendError::Refused(format!(
                    "plain http to {} is not allowed (only to SONDEO_ALERT_ALLOW_ADDRESSES)",
                    a.ip()
                )));
            }
        }
        Ok(addrs)
    }

    /// One request to one vetted hop: its status and, for a redirect, where it points.
    async fn post_once(
        &self,
        url: &url::Url,
        addrs: &[SocketAddr],
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<(u16, Option<String>), SendError> {
        let mut last = String::from("no address");
        let mut stream = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = format!("connection to {addr} failed: {e}"),
                Err(_) => last = format!("connection to {addr} timed out"),
            }
        }
        let stream = stream.ok_or(SendError::Retryable(last))?;
        let _ = stream.set_nodelay(true);
        let host = host_of(url);
        let request = build_request(url, headers, body)?;
        if url.scheme() == "https" {
            let name = match url.host() {
                Some(url::Host::Ipv4(ip)) => rustls::pki_types::ServerName::from(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => rustls::pki_types::ServerName::from(IpAddr::V6(ip)),
                _ => rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| SendError::Refused(format!("bad host name: {e}")))?,
            };
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, stream))
                .await
                .map_err(|_| SendError::Retryable("TLS handshake timed out".into()))?
                .map_err(|e| SendError::Retryable(format!("TLS handshake failed: {e}")))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(stream), request).await
        }
    }

    async fn post_following(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<u16, SendError> {
        let mut current = url::Url::parse(url)
            .map_err(|e| SendError::Refused(format!("not a valid URL: {e}")))?;
        for hop in 0..=MAX_REDIRECTS {
            let addrs = self.vet(&current).await?;
            let (status, location) = self.post_once(&current, &addrs, headers, body).await?;
            let Some(location) = location.filter(|_| is_redirect(status)) else {
                return Ok(status);
            };
            if hop == MAX_REDIRECTS {
                break;
            }
            current = current
                .join(&location)
                .map_err(|e| SendError::Refused(format!("redirect to an invalid URL: {e}")))?;
            tracing::debug!(status, host = %host_of(&current), "following an alert redirect");
        }
        Err(SendError::Refused(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The URL's host as written (IPv6 without brackets), never its path or query.
fn host_of(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => String::new(),
    }
}

fn build_request(
    url: &url::Url,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> Result<http::Request<Full<Bytes>>, SendError> {
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(SendError::Refused("the URL has no host".into())),
    };
    let mut builder = http::Request::post(path)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "Sondeo-Alerts/1")
        .header(http::header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| SendError::Refused(format!("request cannot be built: {e}")))
}

async fn exchange<S>(
    io: TokioIo<S>,
    request: http::Request<Full<Bytes>>,
) -> Result<(u16, Option<String>), SendError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Retryable(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Retryable(format!("request failed: {e}")))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The answer is read (up to the cap) so the endpoint sees a complete exchange.
        let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await;
        Ok((status, location))
    }
    .await;
    driver.abort();
    result
}

#[async_trait]
impl AlertSender for OutboundClient {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<u16, SendError> {
        tokio::time::timeout(TOTAL_TIMEOUT, self.post_following(url, headers, body))
            .await
            .map_err(|_| SendError::Retryable(format!("no answer within {TOTAL_TIMEOUT:?}")))?
    }
}
