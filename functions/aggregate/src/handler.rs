//! SQS batch → `apply_batch` → partial batch failures, with one metrics line per batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use sondeo::aggregate::apply_batch;
use sondeo::ports::ResponseLedger;

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
            "_aws": {"Timestamp": sondeo::time::now_ms(), "CloudWatchMetrics": [{"Namespace": "Sondeo", "Dimensions": [["service"]],
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
mod tests {
    use super::*;
    use sondeo::embedded::EmbeddedStore;
    use sondeo::ports::CounterReader;

    fn event(fixture: &str) -> LambdaEvent<SqsEvent> {
        let payload: SqsEvent = serde_json::from_str(fixture).expect("fixture is an SQS event");
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    const FIXTURE: &str = include_str!("../../../tests/fixtures/sqs_event.json");

    #[tokio::test]
    async fn sqs_fixture_batch_counts_once_and_reports_nothing_failed() {
        let store = EmbeddedStore::in_memory().unwrap();
        let resp = handle(&store, event(FIXTURE)).await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        // The same batch delivered again changes nothing.
        let again = handle(&store, event(FIXTURE)).await.unwrap();
        assert!(again.batch_item_failures.is_empty());
        let day = "2026-11-26".parse().unwrap();
        let rows = store.read_counters("nps-2026", day, day).await.unwrap();
        assert_eq!(rows.len(), 1);
        // Respondent ana answered 6 then 9 (in reverse order in the batch): counted once, as 9.
        assert_eq!(rows[0].histogram.n, 2);
        assert_eq!(rows[0].histogram.slots.get(&9), Some(&1));
        assert_eq!(rows[0].histogram.slots.get(&6), None);
    }

    #[tokio::test]
    async fn a_malformed_message_is_kept_not_retried() {
        let fixture = FIXTURE.replacen("\"body\": \"{", "\"body\": \"{broken", 1);
        let store = EmbeddedStore::in_memory().unwrap();
        let resp = handle(&store, event(&fixture)).await.unwrap();
        assert!(
            resp.batch_item_failures.is_empty(),
            "a message that can never succeed is not retried"
        );
    }
}
