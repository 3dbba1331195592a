//! The aggregator handler driven by a real SQS event fixture.

use super::*;
use sondeo_domain::ports::CounterReader;
use sondeo_embedded::EmbeddedStore;

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
