//! SQS batch → `apply_batch` → partial batch failures, with one metrics line per batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use sondeo_domain::aggregate::{apply_batch, decode_message, BatchOutcome};
use sondeo_domain::alert_delivery::{raise_alerts, CachedAlertRules};
use sondeo_domain::ports::{AlertQueue, ResponseLedger};
use sondeo_domain::time::{now_ms, rfc3339};
use std::collections::HashMap;
use tracing::Span;

/// Applies one SQS batch; failed messages are reported alone, and the invocation fails only
/// when every message failed (so Lambda backs off instead of spinning). `metrics_level` is the
/// `level` the per-batch metrics line carries (see `config::metrics_level`).
pub async fn handle<L: ResponseLedger + ?Sized>(
    ledger: &L,
    event: LambdaEvent<SqsEvent>,
    metrics_level: &str,
) -> Result<SqsBatchResponse, Error> {
    handle_with_alerts(ledger, None, event, metrics_level).await
}

/// Where new counted answers are matched against alert rules and their jobs enqueued.
pub struct AlertHook<'a> {
    /// Each survey's rules, read at most once a minute.
    pub rules: &'a CachedAlertRules,
    /// The alert queue (its own, so deliveries never slow aggregation).
    pub queue: &'a dyn AlertQueue,
}

/// [`handle`], then alert jobs for the batch's new counted answers. Raising alerts never fails
/// or retries the batch: its answers are already applied, and a failure is logged.
pub async fn handle_with_alerts<L: ResponseLedger + ?Sized>(
    ledger: &L,
    alerts: Option<&AlertHook<'_>>,
    event: LambdaEvent<SqsEvent>,
    metrics_level: &str,
) -> Result<SqsBatchResponse, Error> {
    let total = event.payload.records.len();
    let mut without_id = 0;
    let mut spans = HashMap::new();
    let mut messages = Vec::with_capacity(total);
    for record in event.payload.records {
        let Some(id) = record.message_id.filter(|id| !id.is_empty()) else {
            without_id += 1;
            continue;
        };
        let body = record.body.unwrap_or_default();
        spans.insert(id.clone(), message_span(&id, &body));
        messages.push((id, body));
    }
    let outcome = apply_batch(ledger, messages).await;
    log_outcomes(&spans, &outcome);
    if let Some(hook) = alerts.filter(|_| !outcome.counted.is_empty()) {
        let raised = raise_alerts(&outcome.counted, hook.rules, hook.queue).await;
        if raised.enqueued + raised.failed > 0 {
            tracing::info!(
                enqueued = raised.enqueued,
                failed = raised.failed,
                "alerts raised"
            );
        }
    }
    println!(
        "{}",
        metrics_line(&outcome, without_id, metrics_level, now_ms())
    );
    if without_id > 0 {
        // A record without an id cannot be reported as a batch item failure, so it cannot be
        // retried alone: fail the whole invocation and let SQS deliver the batch again (every
        // applied message is a no-op the second time).
        tracing::error!(
            without_id,
            "SQS records without a message id; failing the batch so nothing is lost"
        );
        return Err(format!(
            "{without_id} of {total} SQS records had no message id; the batch will be retried"
        )
        .into());
    }
    if total > 0 && outcome.failed.len() == total {
        return Err(format!("all {total} messages failed; the batch will be retried").into());
    }
    let mut response = SqsBatchResponse::default();
    response.set_failures(outcome.failed);
    Ok(response)
}

/// The batch's CloudWatch Embedded Metric Format line: one JSON object that CloudWatch turns
/// into metrics without API calls. It carries a `level` and an RFC 3339 `timestamp` because
/// Lambda's log-level filter treats a line without them as INFO and drops it below that level.
pub fn metrics_line(outcome: &BatchOutcome, without_id: usize, level: &str, now_ms: i64) -> String {
    serde_json::json!({
        "level": level,
        "timestamp": rfc3339(now_ms),
        "message": "aggregate batch metrics",
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": "Sondeo", "Dimensions": [["service"]],
            "Metrics": [{"Name": "applied", "Unit": "Count"}, {"Name": "superseded", "Unit": "Count"}, {"Name": "rejected", "Unit": "Count"},
                        {"Name": "failed", "Unit": "Count"}, {"Name": "items_written", "Unit": "Count"}, {"Name": "conflicts", "Unit": "Count"},
                        {"Name": "isolations", "Unit": "Count"}, {"Name": "without_id", "Unit": "Count"}]}]},
        "service": "aggregate",
        "applied": outcome.applied.len(), "superseded": outcome.superseded.len(), "rejected": outcome.rejected.len(),
        "failed": outcome.failed.len(), "items_written": outcome.items_written, "conflicts": outcome.conflicts,
        "isolations": outcome.isolations, "without_id": without_id,
    })
    .to_string()
}

/// The span of one message: its queue message id, and its event id once the body decodes.
fn message_span(message_id: &str, body: &str) -> Span {
    let span = tracing::info_span!("message", message_id, event_id = tracing::field::Empty);
    span.in_scope(|| match decode_message(message_id, body) {
        Ok(delivery) => {
            span.record("event_id", delivery.event.event_id.as_str());
        }
        Err(reason) => tracing::debug!(%reason, "message does not decode"),
    });
    span
}

/// One line per message, inside its span, saying what the batch did with it.
fn log_outcomes(spans: &HashMap<String, Span>, outcome: &BatchOutcome) {
    let in_span = |id: &str, log: &dyn Fn()| match spans.get(id) {
        Some(span) => span.in_scope(log),
        None => log(),
    };
    for id in &outcome.applied {
        in_span(id, &|| {
            tracing::info!(outcome = "applied", "message applied")
        });
    }
    for id in &outcome.superseded {
        in_span(id, &|| {
            tracing::info!(
                outcome = "superseded",
                "message changed nothing (duplicate or older answer)"
            )
        });
    }
    for (id, reason) in &outcome.rejected {
        in_span(
            id,
            &|| tracing::warn!(outcome = "rejected", %reason, "message rejected and kept for inspection"),
        );
    }
    for id in &outcome.failed {
        in_span(id, &|| {
            tracing::warn!(
                outcome = "failed",
                "message failed; it will be delivered again"
            )
        });
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
