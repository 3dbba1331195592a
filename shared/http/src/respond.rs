//! Requests and responses of the HTTP edge: errors with a status and a message a person
//! understands, JSON and HTML responses, and request parsing.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use sondeo_domain::ports::StoreError;
use std::collections::BTreeMap;

/// An HTTP request with its whole body.
pub type Request = http::Request<Bytes>;
/// An HTTP response with its whole body.
pub type Response = http::Response<Bytes>;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Seconds a client is asked to wait (`Retry-After`) before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A request that cannot be served, with the status and a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, such as `invalid_score`.
    pub code: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl HttpError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with a code and message.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well-formed but not acceptable.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Maps a storage failure to 503 (try again) or 500, logging the detail but not returning it.
    /// Every 503 carries `Retry-After` (see [`json_response`] and [`html_response`]).
    pub fn from_store(e: StoreError) -> HttpError {
        match e {
            StoreError::AlreadyExists(what) => HttpError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{what} already exists"),
            ),
            StoreError::Transient(detail) => {
                tracing::warn!(%detail, "storage temporarily unavailable");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is busy; please try again in a moment",
                )
            }
            StoreError::OutOfSpace(detail) => {
                tracing::error!(%detail, "storage is out of space; answering 503 until space is freed");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "out_of_space",
                    format!(
                        "the server is out of disk space, so nothing was recorded; \
                         please try again later (in {RETRY_AFTER_SECS} seconds or more)"
                    ),
                )
            }
            StoreError::Permanent(detail) => {
                tracing::error!(%detail, "storage failure");
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }

    /// The error as a JSON API response: `{"error": {"code", "message"}}`.
    pub fn to_json(&self) -> Response {
        json_response(
            self.status,
            &serde_json::json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

/// A JSON response with this status.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = http::Response::new(Bytes::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_retry_after(r)
}

/// A 503 says when to try again, so clients retry instead of giving up.
fn with_retry_after(mut r: Response) -> Response {
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    r
}

/// An HTML response with this status and the headers every respondent page carries.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = http::Response::new(Bytes::from(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages carry tokens in their URL: never cache them, never leak them as a referrer.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src https:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    with_retry_after(r)
}

/// Query-string parameters (last value wins).
pub fn query_params(req: &Request) -> Result<BTreeMap<String, String>, HttpError> {
    let q = req.uri().query().unwrap_or("");
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| {
            HttpError::bad_request("bad_query", "the query string is not valid URL encoding")
        })
}

/// Whether the body is JSON (by Content-Type), as opposed to a form.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// Whether the client asked for JSON back (`Accept: application/json`).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Parses a JSON body into `T`, with a message that names what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, HttpError> {
    serde_json::from_slice(req.body()).map_err(|e| {
        HttpError::bad_request(
            "malformed_json",
            format!("the JSON body could not be read: {e}"),
        )
    })
}

/// Parses a URL-encoded form body into name/value pairs (last value wins).
pub fn parse_form(req: &Request) -> Result<BTreeMap<String, String>, HttpError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(req.body())
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| {
            HttpError::bad_request("malformed_form", "the form body is not valid URL encoding")
        })
}

/// Parses a score given as text, with a message a respondent understands.
pub fn parse_score(raw: &str) -> Result<i64, HttpError> {
    raw.trim().parse::<i64>().map_err(|_| {
        HttpError::bad_request(
            "invalid_score",
            format!(
                "score must be a whole number, not '{}'",
                sondeo_domain::survey::clip(raw, 20)
            ),
        )
    })
}

/// The public base URL: configured, or derived from the request's Host and forwarded protocol.
pub fn base_url(configured: Option<&str>, req: &Request) -> String {
    if let Some(b) = configured.filter(|b| !b.is_empty()) {
        return b.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or(
            if host.starts_with("127.0.0.1") || host.starts_with("localhost") {
                "http"
            } else {
                "https"
            },
        );
    format!("{proto}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(r: &Response) -> Option<&str> {
        r.headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_full_disk_answers_503_with_retry_after_and_says_so() {
        let e = HttpError::from_store(StoreError::OutOfSpace("database or disk is full".into()));
        let r = e.to_json();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("5"));
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"]["code"], "out_of_space");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("out of disk space") && message.contains("try again later"),
            "{message}"
        );
        assert!(
            !message.contains("database or disk"),
            "the detail stays in the log"
        );
    }

    #[test]
    fn a_transient_store_failure_answers_503_with_retry_after_as_json_and_html() {
        let e = HttpError::from_store(StoreError::Transient("ThrottlingException".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&e.to_json()), Some("5"));
        let page = html_response(e.status, format!("<p>{}</p>", e.message));
        assert_eq!(retry_after(&page), Some("5"));
    }

    #[test]
    fn other_errors_carry_no_retry_after() {
        let e = HttpError::from_store(StoreError::Permanent("bad".into()));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(&e.to_json()), None);
        assert_eq!(
            retry_after(&html_response(StatusCode::BAD_REQUEST, String::new())),
            None
        );
    }
}
