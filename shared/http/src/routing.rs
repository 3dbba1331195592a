//! What every router shares, as tower layers: body-size limit, request ids, one tracing span per
//! request, trailing-slash normalisation, and a JSON 404 for paths no route serves; and the
//! fast path that serves the one-click routes without the router's layers.

use crate::respond::{HttpError, Request, Response, MAX_BODY_BYTES};
use axum::body::HttpBody;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::Router;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

/// A finished router: what a Lambda function hands to `lambda_http::run` and local mode to `axum::serve`.
///
/// Requests a [`FastRoute`] serves skip the router and its layers (the same request id, span and
/// body limit, done inline); every other request goes through the router.
#[derive(Clone)]
pub struct HttpService {
    router: NormalizePath<Router>,
    pub(crate) fast: Option<Arc<dyn FastRoute>>,
}

/// A route served in front of the router: the click path, where the router's boxed layers cost
/// more than the 10% the "one house" issue allows (`router_instructions` bench).
pub trait FastRoute: Send + Sync + 'static {
    /// The route's pattern, as the request span names it.
    fn pattern(&self) -> &'static str;
    /// Whether this route serves a request with this method and path (as received).
    fn serves(&self, method: &Method, path: &str) -> bool;
    /// Answers a request this route serves; the body is read within [`MAX_BODY_BYTES`].
    fn serve(self: Arc<Self>, req: axum::extract::Request) -> BoxFuture;
}

/// A response future as the fast path and the router both give it.
pub type BoxFuture = Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;

impl<B> Service<http::Request<B>> for HttpService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready, and the fast path holds no capacity.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match &self.fast {
            Some(fast) if fast.serves(req.method(), req.uri().path()) => {
                let fast = fast.clone();
                Box::pin(async move { Ok(serve_fast(fast, req.map(axum::body::Body::new)).await) })
            }
            _ => {
                let mut router = self.router.clone();
                Box::pin(async move { router.call(req).await })
            }
        }
    }
}

/// Serves a request on the fast path with what the shared layers would add: its request id
/// (the client's or a new one, echoed on the response) and its span.
async fn serve_fast(
    fast: Arc<dyn FastRoute>,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    let id = match req.headers().get(REQUEST_ID_HEADER) {
        Some(id) => id.clone(),
        None => {
            let id = HeaderValue::from_bytes(&hex16(rand::random()))
                .unwrap_or(HeaderValue::from_static("0000000000000000"));
            req.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = fast.pattern(),
        request_id = id.to_str().unwrap_or(""),
    );
    let mut resp = fast.serve(req).instrument(span.clone()).await;
    if resp.status().is_server_error() {
        // What TraceLayer's default failure classifier logs for the router's routes.
        span.in_scope(|| tracing::error!(status = resp.status().as_u16(), "response failed"));
    }
    let headers = resp.headers_mut();
    headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    // What axum's routes add to a body of known size.
    if !headers.contains_key(http::header::CONTENT_LENGTH) {
        if let Some(len) = resp.body().size_hint().exact() {
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    resp
}

/// The request-id header set on every request (when the client sent none) and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request ids: 16 random hex digits.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_bytes(&hex16(rand::random()))
            .ok()
            .map(RequestId::new)
    }
}

/// A number as 16 lower-case hex digits (what `format!("{:016x}")` gives, without the formatter).
fn hex16(mut n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
    out
}

/// Adds the shared layers and the 404 fallback to a router's routes, and trims trailing slashes.
pub fn finish(routes: Router) -> HttpService {
    finish_with(routes, None)
}

/// [`finish`], with a route served in front of the router.
pub fn finish_with(routes: Router, fast: Option<Arc<dyn FastRoute>>) -> HttpService {
    let header = http::HeaderName::from_static(REQUEST_ID_HEADER);
    // One `Router::layer` for the whole stack: axum boxes each layer it is given around every
    // route, and each box costs a clone and a boxed future per request.
    let layers = ServiceBuilder::new()
        // Outermost first: set the id, open the span with it, echo it on the response.
        .layer(SetRequestIdLayer::new(header.clone(), RandomRequestId))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(header))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let router = routes
        .fallback(no_route)
        // A known path with a method no route serves: 405, with the methods it takes in `Allow`.
        .method_not_allowed_fallback(wrong_method)
        .layer(layers);
    HttpService {
        router: NormalizePathLayer::trim_trailing_slash().layer(router),
        fast,
    }
}

/// One span per request: method, the route's pattern (never the raw path, which holds link
/// tokens) and the request id.
pub fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    // The field values are only looked up when the span is enabled (a subscriber at INFO).
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("unmatched"),
        request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// The JSON 405 for a known path asked with a method it does not take (axum adds `Allow`).
pub async fn wrong_method(method: http::Method, uri: http::Uri) -> axum::response::Response {
    into_axum(
        HttpError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} does not take {method} here: the Allow header lists the methods it takes \
                 (a deployed stack serves its other routes at its other function URLs)",
                sondeo_domain::survey::clip(uri.path(), 100)
            ),
        )
        .to_json(),
    )
}

/// The JSON 404 for a path no route serves.
pub async fn no_route(method: http::Method, uri: http::Uri) -> axum::response::Response {
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
    buffered_within(req, MAX_BODY_BYTES).await
}

/// Reads a request's whole body within `limit` bytes (a route that takes larger bodies).
pub async fn buffered_within(
    req: axum::extract::Request,
    limit: usize,
) -> Result<Request, HttpError> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(http::Request::from_parts(parts, bytes)),
        Err(e)
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) =>
        {
            Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over the {limit} byte limit"),
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

/// The reading end of a streamed answer (the bulk links, the CSV export), as an HTTP body: the
/// chunks a writer task sends, ending early with an error if the writer fails midway.
pub(crate) struct ChunkStream(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl From<tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>> for ChunkStream {
    fn from(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> ChunkStream {
        ChunkStream(rx)
    }
}

impl http_body::Body for ChunkStream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(http_body::Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    type Fields = BTreeMap<String, String>;

    /// Keeps the fields of every span named "request" opened on a thread that is recording.
    #[derive(Clone, Default)]
    struct RequestSpans(Arc<Mutex<Vec<Fields>>>);

    thread_local! {
        /// Whether spans opened on this thread are kept.
        static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// The recorder, installed once as the global subscriber. A scoped one (`with_default`) races
    /// with the other tests: a callsite first hit on another thread without a subscriber is
    /// cached as disabled for every thread, and its span goes missing.
    fn recorder() -> &'static RequestSpans {
        static RECORDER: std::sync::OnceLock<RequestSpans> = std::sync::OnceLock::new();
        RECORDER.get_or_init(|| {
            let spans = RequestSpans::default();
            tracing::subscriber::set_global_default(spans.clone())
                .expect("no other test sets a global subscriber");
            spans
        })
    }

    struct Collect<'a>(&'a mut Fields);

    impl Visit for Collect<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl Subscriber for RequestSpans {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if span.metadata().name() == "request" && RECORDING.with(|r| r.get()) {
                let mut fields = Fields::new();
                span.record(&mut Collect(&mut fields));
                spans.push(fields);
            }
            Id::from_u64(spans.len() as u64 + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// Sends one request through a finished router on this thread while the recorder keeps
    /// its spans; returns the response's request-id header.
    fn send(req: http::Request<axum::body::Body>) -> String {
        recorder();
        let router = finish(Router::new().route("/items/{id}", get(|| async { "item" })));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        RECORDING.with(|r| r.set(true));
        let resp = rt
            .block_on(router.oneshot(req))
            .unwrap_or_else(|never| match never {});
        RECORDING.with(|r| r.set(false));
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers()[REQUEST_ID_HEADER]
            .to_str()
            .expect("ASCII id")
            .to_string()
    }

    #[test]
    fn each_request_has_one_span_with_its_route_and_the_id_it_is_answered_with() {
        let req = http::Request::get("/items/7/")
            .body(axum::body::Body::empty())
            .expect("request");
        let id = send(req);
        assert_eq!(id.len(), 16, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
        let req = http::Request::get("/items/8")
            .header(REQUEST_ID_HEADER, "from-the-client")
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(send(req), "from-the-client");
        let spans = recorder()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let expected = |id: &str| {
            Fields::from([
                ("method".to_string(), "GET".to_string()),
                ("route".to_string(), "/items/{id}".to_string()),
                ("request_id".to_string(), id.to_string()),
            ])
        };
        assert_eq!(spans, vec![expected(&id), expected("from-the-client")]);
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_of_the_number() {
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&hex16(0), b"0000000000000000");
        assert_eq!(&hex16(u64::MAX), b"ffffffffffffffff");
        assert_eq!(&hex16(0xa5), b"00000000000000a5");
    }
}
