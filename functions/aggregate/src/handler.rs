//! SQS batch → `apply_batch` → partial batch failures, with one metrics line per batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::ports::ResponseLedger;

/// Applies one SQS batch; failed messages are reported alone, and the invocation fails only
/// when every message failed (so Lambda backs off instead of spinning).
pub async fn handle<L: ResponseLedger + ?Sized>(
    ledger: &L,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let total = event.payload.records.len();
    let mut without_id = 0;
    let messages: Vec<(String, String)> = event
        .payload
        .records
        .into_iter()
        .filter_map(|r| match r.message_id {
            Some(id) => Some((id, r.body.unwrap_or_default())),
            None => {
                without_id += 1;
                None
            }
        })
        .collect();
    let outcome = apply_batch(ledger, messages).await;
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

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
