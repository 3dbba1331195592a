//! Lambda glue: tracing setup, AWS configuration, and API Gateway requests to and from the
//! shared HTTP handlers (compiled with the `lambda` feature).

use crate::web;
use bytes::Bytes;
use lambda_http::{Body, Request};

/// Structured logs: JSON when Lambda's log format is JSON, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_tracing() {
    lambda_http::tracing::init_default_subscriber();
}

/// The AWS configuration, loaded once per process (endpoints from the SDK's environment variables).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An API Gateway request as a shared handler request.
pub fn to_web(req: Request) -> web::Request {
    let (parts, body) = req.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// A shared handler response as an API Gateway response (text bodies stay text).
pub fn from_web(resp: web::Response) -> http::Response<Body> {
    let (parts, bytes) = resp.into_parts();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    http::Response::from_parts(parts, body)
}

/// Runs an HTTP function: every API Gateway request goes to `handle`.
pub async fn run_http<F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(web::Request) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = web::Response> + Send,
{
    let handle = &handle;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let resp = handle(to_web(req)).await;
        Ok::<_, std::convert::Infallible>(from_web(resp))
    }))
    .await
}
