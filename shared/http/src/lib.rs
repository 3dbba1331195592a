//! Sondeo's HTTP edge, shared by the Lambda functions and local mode: routing, request parsing,
//! errors mapped to status codes with JSON (API) or HTML (respondent pages) bodies.
//!
//! Each function has one axum router (`collect::router`, `admin::router`); Lambda serves it
//! through `lambda_http::run`, local mode serves both merged (`local_router`) through
//! `axum::serve`. CORS, body limits, request ids and request spans are tower layers.

#![warn(missing_docs)]

pub mod admin;
pub mod collect;
pub mod pages;
pub mod routing;

pub use routing::HttpService;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;
use sondeo_domain::ports::StoreError;
use sondeo_domain::survey::Locale;
use std::collections::BTreeMap;

/// An HTTP request with its whole body.
pub type Request = http::Request<Bytes>;
/// An HTTP response with its whole body.
pub type Response = http::Response<Bytes>;

/// Both functions' routes in one router, as local mode serves them on one port.
pub fn local_router(collect: collect::CollectApp, admin: admin::AdminApp) -> HttpService {
    routing::finish(collect::routes(collect).merge(admin::routes(admin)))
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Which function serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Respondent-facing and submission routes (`functions/collect`).
    Collect,
    /// API-key routes: metrics, surveys, links (`functions/metrics`).
    Metrics,
}

/// Every HTTP route: method, path pattern, and the function whose router serves it (the
/// template gives each such function a URL; a test checks the routers serve exactly these).
pub const ROUTES: &[(&str, &str, Function)] = &[
    ("GET", "/r/{token}", Function::Collect),
    ("POST", "/r/{token}", Function::Collect),
    ("POST", "/v1/responses", Function::Collect),
    ("OPTIONS", "/v1/responses", Function::Collect),
    ("GET", "/v1/metrics", Function::Metrics),
    ("GET", "/v1/surveys", Function::Metrics),
    ("POST", "/v1/surveys", Function::Metrics),
    ("GET", "/v1/surveys/{id}", Function::Metrics),
    ("POST", "/v1/links", Function::Metrics),
];

/// The function whose route matches a method and path, if any.
pub fn function_for(method: &Method, path: &str) -> Option<Function> {
    let path = path.strip_suffix('/').unwrap_or(path);
    ROUTES.iter().find_map(|(m, pattern, f)| {
        let mut segments = path.split('/');
        let mut parts = pattern.split('/');
        let same = *m == method.as_str()
            && loop {
                match (parts.next(), segments.next()) {
                    (None, None) => break true,
                    (Some(p), Some(s)) if (p.starts_with('{') && !s.is_empty()) || p == s => {
                        continue
                    }
                    _ => break false,
                }
            };
        same.then_some(*f)
    })
}

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
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    r
}

/// The error as an HTML page in the survey's language.
pub fn html_error(e: &HttpError, locale: Locale) -> Response {
    html_response(e.status, pages::error_page(e, locale))
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

    #[test]
    fn routes_resolve_to_their_function_and_unknown_paths_to_none() {
        assert_eq!(
            function_for(&Method::GET, "/r/abc.def"),
            Some(Function::Collect)
        );
        assert_eq!(
            function_for(&Method::POST, "/v1/responses"),
            Some(Function::Collect)
        );
        assert_eq!(
            function_for(&Method::GET, "/v1/surveys/nps"),
            Some(Function::Metrics)
        );
        assert_eq!(
            function_for(&Method::GET, "/v1/surveys"),
            Some(Function::Metrics)
        );
        assert_eq!(function_for(&Method::DELETE, "/v1/surveys"), None);
        assert_eq!(function_for(&Method::GET, "/r/"), None);
        assert_eq!(function_for(&Method::GET, "/nope"), None);
    }
}

#[cfg(test)]
mod router_tests {
    use super::*;
    use async_trait::async_trait;
    use sondeo_domain::keys::ApiKeys;
    use sondeo_domain::ports::{CounterReader, CounterRow, ResponseQueue, SurveyStore};
    use sondeo_domain::response::ResponseEvent;
    use sondeo_domain::survey::Survey;
    use sondeo_domain::time::Day;
    use sondeo_domain::token::LinkKeyring;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// Stores nothing and finds nothing: enough to see which routes a router serves.
    struct Empty;

    #[async_trait]
    impl SurveyStore for Empty {
        async fn get_survey(&self, _: &str) -> Result<Option<Survey>, StoreError> {
            Ok(None)
        }
        async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ResponseQueue for Empty {
        async fn enqueue(&self, _: &ResponseEvent) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl CounterReader for Empty {
        async fn read_counters(
            &self,
            _: &str,
            _: Day,
            _: Day,
        ) -> Result<Vec<CounterRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    const KEY: &str = "0123456789abcdef-router";

    fn routers() -> (HttpService, HttpService) {
        let keyring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-router").unwrap();
        let collect = collect::router(collect::CollectApp {
            surveys: Arc::new(Empty),
            queue: Arc::new(Empty),
            keyring: keyring.clone(),
            allowed_origins: Vec::new(),
        });
        let admin = admin::router(admin::AdminApp {
            surveys: Arc::new(Empty),
            counters: Arc::new(Empty),
            api_keys: ApiKeys::from_list(KEY).unwrap(),
            keyring,
            base_url: None,
        });
        (collect, admin)
    }

    async fn call(router: &HttpService, method: &str, path: &str) -> (StatusCode, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        (status, code)
    }

    #[tokio::test]
    async fn each_router_serves_exactly_its_functions_routes() {
        let (collect, admin) = routers();
        for (method, pattern, function) in ROUTES {
            let path = pattern.replace("{token}", "x.y").replace("{id}", "nps");
            let (own, other) = match function {
                Function::Collect => (&collect, &admin),
                Function::Metrics => (&admin, &collect),
            };
            let (status, code) = call(own, method, &path).await;
            assert!(
                code != "no_route" && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: its router answered {status} {code}"
            );
            let (status, code) = call(other, method, &path).await;
            assert!(
                code == "no_route" || status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is also served by the other router ({status} {code})"
            );
        }
    }

    #[tokio::test]
    async fn unknown_paths_answer_json_404_and_trailing_slashes_are_ignored() {
        let (collect, admin) = routers();
        assert_eq!(
            call(&collect, "GET", "/nope").await,
            (StatusCode::NOT_FOUND, "no_route".to_string())
        );
        assert_eq!(
            call(&admin, "DELETE", "/v1/surveys").await,
            (StatusCode::NOT_FOUND, "no_route".to_string())
        );
        assert_eq!(call(&admin, "GET", "/v1/surveys/").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id() {
        let (collect, _) = routers();
        let req = http::Request::builder()
            .uri("/nope")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = collect.clone().oneshot(req).await.unwrap();
        let id = resp.headers()[routing::REQUEST_ID_HEADER].to_str().unwrap();
        assert_eq!(id.len(), 16, "{id}");
    }
}
