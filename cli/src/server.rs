//! The local HTTP server (hyper) and the durable-queue drain loop feeding the shared aggregator.

use crate::local::LocalStack;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sondeo_domain::aggregate::apply_batch;
use sondeo_http::{self as web, Function, HttpError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Messages the drain loop takes per batch (as the template's SQS batch size).
pub const DRAIN_BATCH: usize = 100;
/// How long a received local message stays hidden before it is delivered again.
const VISIBILITY_MS: i64 = 30_000;

/// A running local server; dropping it does not stop it, `shutdown` does.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, lets the drain loop finish its batch, and waits for both.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Routes one request to the collect or admin app, exactly as API Gateway routes to the functions.
pub async fn dispatch(stack: &LocalStack, req: web::Request) -> web::Response {
    match web::function_for(req.method(), req.uri().path()) {
        Some(Function::Collect) => stack.collect.handle(req).await,
        Some(Function::Metrics) => stack.admin.handle(req).await,
        None => HttpError::not_found(
            "no_route",
            format!("no route for {} {}", req.method(), req.uri().path()),
        )
        .to_json(),
    }
}

async fn serve_one(
    stack: Arc<LocalStack>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let resp = match Limited::new(body, web::MAX_BODY_BYTES).collect().await {
        Ok(collected) => {
            dispatch(
                &stack,
                http::Request::from_parts(parts, collected.to_bytes()),
            )
            .await
        }
        Err(_) => HttpError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is over the {} byte limit",
                web::MAX_BODY_BYTES
            ),
        )
        .to_json(),
    };
    let (parts, bytes) = resp.into_parts();
    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
}

/// Applies queued messages until `stop`; returns after a final drain.
async fn drain_loop(stack: Arc<LocalStack>, mut stop: watch::Receiver<bool>) {
    loop {
        let applied = drain_once(&stack).await;
        if *stop.borrow() {
            return;
        }
        if applied == 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Takes one batch from the local queue, applies it with the shared aggregator, and acknowledges
/// what was applied; failed messages come back after a delay. Returns the messages handled.
pub async fn drain_once(stack: &LocalStack) -> usize {
    let batch = match stack.store.receive(DRAIN_BATCH, VISIBILITY_MS) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the local queue");
            return 0;
        }
    };
    if batch.is_empty() {
        return 0;
    }
    let n = batch.len();
    let outcome = apply_batch(&stack.store, batch).await;
    let done: Vec<String> = outcome
        .applied
        .iter()
        .chain(&outcome.superseded)
        .cloned()
        .chain(outcome.rejected.iter().map(|(id, _)| id.clone()))
        .collect();
    if let Err(e) = stack.store.ack(&done) {
        tracing::error!(error = %e, "cannot acknowledge applied messages; they will be delivered again (and change nothing)");
    }
    if !outcome.failed.is_empty() {
        tracing::warn!(
            failed = outcome.failed.len(),
            "messages failed; retrying in a second"
        );
        if let Err(e) = stack.store.retry_later(&outcome.failed, 1_000) {
            tracing::error!(error = %e, "cannot reschedule failed messages; they reappear after the visibility timeout");
        }
    }
    n
}

/// Starts the server on `addr` and the drain loop.
pub async fn start(stack: Arc<LocalStack>, addr: SocketAddr) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let drain = tokio::spawn(drain_loop(stack.clone(), stop_rx.clone()));
    let mut accept_stop = stop_rx;
    let accept = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = accept_stop.changed() => return,
            };
            let _ = stream.set_nodelay(true);
            let stack = stack.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| serve_one(stack.clone(), req));
                if let Err(e) = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
            });
        }
    });
    Ok(RunningServer {
        addr,
        stop,
        tasks: vec![accept, drain],
    })
}
