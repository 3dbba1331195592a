//! The local HTTP server (`axum::serve` of the same routers the functions run) and the durable-queue drain loop feeding the shared aggregator.

use crate::local::LocalStack;
use axum::body::Body;
use axum::serve::ListenerExt;
use sondeo_domain::aggregate::apply_batch;
use sondeo_http::{self as web, HttpError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

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

/// Serves one request in process through the local router, exactly as the server would.
pub async fn dispatch(stack: &LocalStack, req: web::Request) -> web::Response {
    let resp = match stack.router.clone().oneshot(req.map(Body::from)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => web::Response::from_parts(parts, bytes),
        Err(e) => HttpError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the response could not be read: {e}"),
        )
        .to_json(),
    }
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
    let batch = match stack.store.receive_async(DRAIN_BATCH, VISIBILITY_MS).await {
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
    if let Err(e) = stack.store.ack_async(&done).await {
        tracing::error!(error = %e, "cannot acknowledge applied messages; they will be delivered again (and change nothing)");
    }
    if !outcome.failed.is_empty() {
        tracing::warn!(
            failed = outcome.failed.len(),
            "messages failed; retrying in a second"
        );
        if let Err(e) = stack.store.retry_later_async(&outcome.failed, 1_000).await {
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
    // Answers are small: send each as soon as it is written (no Nagle delay on keep-alive connections).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let service =
        axum::ServiceExt::<axum::extract::Request>::into_make_service(stack.router.clone());
    let serve = tokio::spawn(async move {
        let stopped = async move {
            let _ = accept_stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the local server stopped with an error");
        }
    });
    Ok(RunningServer {
        addr,
        stop,
        tasks: vec![serve, drain],
    })
}
