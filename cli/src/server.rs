//! The local HTTP server (`axum::serve` of the same routers the functions run) and the durable-queue drain loop feeding the shared aggregator.

use crate::head_check::{self, CheckedListener};
use crate::local::LocalStack;
use async_trait::async_trait;
use axum::body::Body;
use axum::serve::ListenerExt;
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::alert_delivery::{raise_alerts, run_alert_job, AlertWorker, JobOutcome};
use sondeo_domain::changes::Chunk;
use sondeo_domain::changes::RecordState;
use sondeo_domain::ports::{CommitOutcome, InvitationStore, ResponseLedger, StoreError};
use sondeo_domain::response::ResponseKey;
use sondeo_embedded::EmbeddedStore;
use sondeo_http::{self as web, HttpError};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// How often the mail loop looks for due invitations.
const MAIL_TICK: Duration = Duration::from_secs(1);
/// Invitations delivered per tick at most.
const MAIL_BATCH: usize = 50;

/// Delivers the invitations due now (as the mail function does when a schedule fires), writing
/// each email to the outbox; returns how many were handled.
pub async fn deliver_due_once(stack: &LocalStack) -> usize {
    use sondeo_domain::invite::Courier;
    let now = sondeo_domain::time::now_ms();
    let due = match stack.store.due_invitations(now, MAIL_BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "due invitations could not be read");
            return 0;
        }
    };
    let courier = Courier {
        invitations: &stack.store,
        suppressions: &stack.store,
        surveys: &stack.store,
        connections: &stack.store,
        mailer: &stack.outbox,
    };
    let compose = |survey: &sondeo_domain::survey::Survey,
                   connection: &sondeo_domain::orders::Connection,
                   invitation: &sondeo_domain::orders::Invitation| {
        web::compose::compose_invitation(
            &stack.keyring,
            &stack.links_base,
            survey,
            connection,
            invitation,
            now / 1000,
        )
    };
    for invitation in &due {
        match courier
            .deliver(&invitation.connection, &invitation.order, now, &compose)
            .await
        {
            Ok(outcome) => tracing::debug!(?outcome, "invitation delivery"),
            Err(e) => tracing::warn!(error = %e, "invitation delivery failed; retried next tick"),
        }
    }
    due.len()
}

/// Delivers due invitations every tick until `stop`.
async fn mail_loop(stack: Arc<LocalStack>, mut stop: watch::Receiver<bool>) {
    loop {
        deliver_due_once(&stack).await;
        tokio::select! {
            _ = tokio::time::sleep(MAIL_TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often the alert loop looks for due alert jobs.
const ALERT_TICK: Duration = Duration::from_millis(250);
/// Alert jobs run per tick at most.
const ALERT_BATCH: usize = 20;
/// How long a received alert job stays hidden (longer than one post with its timeouts).
const ALERT_VISIBILITY_MS: i64 = 60_000;

/// Runs the alert jobs due at `now_ms` (as the alerts function does with its queue's messages):
/// each is claimed, posted and retried later with backoff; returns what each run did.
pub async fn deliver_alerts_at(stack: &LocalStack, now_ms: i64) -> Vec<JobOutcome> {
    let jobs = match stack
        .store
        .receive_alert_jobs(ALERT_BATCH, ALERT_VISIBILITY_MS, now_ms)
        .await
    {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "alert jobs could not be read");
            return Vec::new();
        }
    };
    let worker = AlertWorker {
        rules: &stack.store,
        log: &stack.store,
        queue: &stack.store,
        sender: &stack.outbound,
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut done = Vec::with_capacity(jobs.len());
    for (id, job) in jobs {
        let outcome = run_alert_job(&job, &worker, now_ms).await;
        tracing::debug!(?outcome, rule = %job.rule_id, delivery = %job.delivery_id, "alert job");
        // A job whose store failed stays hidden and comes back after the visibility timeout.
        if !matches!(outcome, JobOutcome::RetryLater(_)) {
            done.push(id);
        }
        outcomes.push(outcome);
    }
    if let Err(e) = stack.store.ack_alert_jobs(&done).await {
        tracing::warn!(error = %e, "handled alert jobs could not be removed; their claims keep them from posting again");
    }
    outcomes
}

/// Runs due alert jobs every tick until `stop`.
async fn alert_loop(stack: Arc<LocalStack>, mut stop: watch::Receiver<bool>) {
    loop {
        deliver_alerts_at(&stack, sondeo_domain::time::now_ms()).await;
        tokio::select! {
            _ = tokio::time::sleep(ALERT_TICK) => {}
            _ = stop.changed() => return,
        }
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

/// The store as the aggregator's ledger, noting whether a write found the disk full.
struct WatchedLedger<'a> {
    store: &'a EmbeddedStore,
    out_of_space: AtomicBool,
}

impl WatchedLedger<'_> {
    fn watch<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::OutOfSpace(_)) = &result {
            self.out_of_space.store(true, Ordering::Relaxed);
        }
        result
    }
}

#[async_trait]
impl ResponseLedger for WatchedLedger<'_> {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        self.store.load_records(keys).await
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        self.watch(self.store.commit(chunk).await)
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.watch(self.store.keep_rejected(message_id, body, reason).await)
    }
}

/// How long the drain loop waits before reading the queue again when the disk is full.
const OUT_OF_SPACE_PAUSE: Duration = Duration::from_secs(1);

/// Takes one batch from the local queue, applies it with the shared aggregator, and acknowledges
/// what was applied; failed messages come back after a delay. Returns the messages handled.
pub async fn drain_once(stack: &LocalStack) -> usize {
    let batch = match stack.store.receive_async(DRAIN_BATCH, VISIBILITY_MS).await {
        Ok(b) => b,
        Err(e @ StoreError::OutOfSpace(_)) => {
            tracing::warn!(error = %e, "the disk is full; the queue is read again in a second");
            tokio::time::sleep(OUT_OF_SPACE_PAUSE).await;
            return 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the local queue");
            return 0;
        }
    };
    if batch.is_empty() {
        return 0;
    }
    let n = batch.len();
    let ledger = WatchedLedger {
        store: &stack.store,
        out_of_space: AtomicBool::new(false),
    };
    let outcome = apply_batch(&ledger, batch).await;
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
    if !outcome.counted.is_empty() {
        // Onto the alert queue, which the alert loop drains apart from aggregation.
        raise_alerts(&outcome.counted, &stack.alert_rules, &stack.store).await;
    }
    if !outcome.failed.is_empty() && ledger.out_of_space.load(Ordering::Relaxed) {
        // The disk is full, not the messages wrong: they stay queued, uncounted toward the
        // dead-letter limit, and are applied once space is freed.
        tracing::warn!(
            failed = outcome.failed.len(),
            "the disk is full; answers stay queued and are applied once space is freed"
        );
        if let Err(e) = stack
            .store
            .retry_uncounted_async(&outcome.failed, OUT_OF_SPACE_PAUSE.as_millis() as i64)
            .await
        {
            tracing::error!(error = %e, "cannot reschedule failed messages; they reappear after the visibility timeout");
        }
    } else if !outcome.failed.is_empty() {
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
    let mail = tokio::spawn(mail_loop(stack.clone(), stop_rx.clone()));
    let alerts = tokio::spawn(alert_loop(stack.clone(), stop_rx.clone()));
    let mut accept_stop = stop_rx;
    // Answers are small: send each as soon as it is written (no Nagle delay on keep-alive connections).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Request heads hyper would refuse with an empty answer are refused here with a reason.
    let nonce: Arc<str> = format!("{:032x}", rand::random::<u128>()).into();
    let listener = CheckedListener::new(listener, nonce.clone());
    let router = stack.router.clone();
    let service = tower::service_fn(move |req: axum::extract::Request| {
        let router = router.clone();
        let refused = head_check::refusal(&req, &nonce);
        async move {
            if let Some(why) = refused {
                return Ok::<_, Infallible>(web::routing::into_axum(why.error().to_json()));
            }
            router.oneshot(req).await
        }
    });
    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(service);
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
        tasks: vec![serve, drain, mail, alerts],
    })
}
