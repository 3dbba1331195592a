//! What every router shares, as tower layers: body-size limit, request ids, one tracing span per
//! request, trailing-slash normalisation, and a JSON 404 for paths no route serves.

use crate::respond::{HttpError, Request, Response, MAX_BODY_BYTES};
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::Router;
use http::{HeaderValue, StatusCode};
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

/// A finished router: what a Lambda function hands to `lambda_http::run` and local mode to `axum::serve`.
pub type HttpService = NormalizePath<Router>;

/// The request-id header set on every request (when the client sent none) and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request ids: 16 random hex digits.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Adds the shared layers and the 404 fallback to a router's routes, and trims trailing slashes.
pub fn finish(routes: Router) -> HttpService {
    let header = http::HeaderName::from_static(REQUEST_ID_HEADER);
    let router = routes
        .fallback(no_route)
        // A known path with a method no route serves: the same JSON 404 as an unknown path.
        .method_not_allowed_fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost first: set the id, open the span with it, echo it on the response.
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(header, RandomRequestId));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// One span per request: method, the route's pattern (never the raw path, which holds link
/// tokens) and the request id.
fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), route, request_id)
}

async fn no_route(method: http::Method, uri: http::Uri) -> axum::response::Response {
    into_axum(
        HttpError::not_found(
            "no_route",
            format!(
                "no route for {method} {}",
                sondeo_domain::survey::clip(uri.path(), 100)
            ),
        )
        .to_json(),
    )
}

/// Reads a request's whole body within the router's body limit; a larger body is a 413 whose
/// message states the limit.
pub async fn buffered(req: axum::extract::Request) -> Result<Request, HttpError> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => Ok(http::Request::from_parts(parts, bytes)),
        Err(e)
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) =>
        {
            Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over the {MAX_BODY_BYTES} byte limit"),
            ))
        }
        Err(e) => Err(HttpError::bad_request(
            "unreadable_body",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// An `http::Response<Bytes>` as axum's response type.
pub fn into_axum(resp: Response) -> axum::response::Response {
    resp.map(axum::body::Body::from)
}
