//! SQS batch → `apply_batch` → partial batch failures, with one metrics line per batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use sondeo_domain::aggregate::{apply_batch, decode_message, BatchOutcome};
use sondeo_domain::ports::ResponseLedger;
use std::collections::HashMap;
use tracing::Span;

/// Applies one SQS batch; failed messages are reported alone, and the invocation fails only
/// when every message failed (so Lambda backs off instead of spinning).
pub async fn handle<L: ResponseLedger + ?Sized>(
    ledger: &L,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let total = event.payload.records.len();
    let mut without_id = 0;
    let mut spans = HashMap::new();
    let mut messages = Vec::with_capacity(total);
    for record in event.payload.records {
        let Some(id) = record.message_id else {
            without_id += 1;
            continue;
        };
        let body = record.body.unwrap_or_default();
        spans.insert(id.clone(), message_span(&id, &body));
        messages.push((id, body));
    }
    let outcome = apply_batch(ledger, messages).await;
    log_outcomes(&spans, &outcome);
    // CloudWatch Embedded Metric Format: one line, turned into metrics without API calls.
    println!(
        "{}",
        serde_json::json!({
            "_aws": {"Timestamp": sondeo_domain::time::now_ms(), "CloudWatchMetrics": [{"Namespace": "Sondeo", "Dimensions": [["service"]],
                "Metrics": [{"Name": "applied", "Unit": "Count"}, {"Name": "superseded", "Unit": "Count"}, {"Name": "rejected", "Unit": "Count"},
                            {"Name": "failed", "Unit": "Count"}, {"Name": "items_written", "Unit": "Count"}, {"Name": "conflicts", "Unit": "Count"}]}]},
            "service": "aggregate",
            "applied": outcome.applied.len(), "superseded": outcome.superseded.len(), "rejected": outcome.rejected.len(),
            "failed": outcome.failed.len(), "items_written": outcome.items_written, "conflicts": outcome.conflicts,
        })
    );
    if without_id > 0 {
        tracing::error!(without_id, "SQS records without a message id were skipped");
    }
    if total > 0 && outcome.failed.len() == total {
        return Err(format!("all {total} messages failed; the batch will be retried").into());
    }
    let mut response = SqsBatchResponse::default();
    response.set_failures(outcome.failed);
    Ok(response)
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
