//! The ledger's failure paths that moto never produces (it runs one DynamoDB call at a time):
//! cancelled transactions with reasons by index, answered by a [`DynamoTap`] in place of the
//! server, against the real `DynamoStore` on moto.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::aggregate::MAX_TRANSACTION_ACTIONS;
use sondeo_domain::aggregate::{apply_batch, chunk, latest_per_key, plan, Delivery};
use sondeo_domain::ports::{CommitOutcome, ResponseLedger, StoreError};
use sondeo_domain::response::ResponseEvent;
use sondeo_tests::dynamo_wire::{Action, DynamoTap};
use sondeo_tests::*;
use std::collections::HashMap;

/// A store whose client goes through `tap`, and a plain one on the same table (another writer).
async fn stores(tap: &DynamoTap) -> (DynamoStore, DynamoStore) {
    let sdk = moto_config().await;
    let plain = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&plain, &unique("faults")).await;
    (
        DynamoStore::new(tap.client(&sdk), table.clone()),
        DynamoStore::new(plain, table),
    )
}

fn messages(events: &[ResponseEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("m{i}"), serde_json::to_string(e).unwrap()))
        .collect()
}

fn one_chunk(events: &[ResponseEvent]) -> sondeo_domain::aggregate::Chunk {
    let deliveries = events
        .iter()
        .map(|e| Delivery {
            message_id: e.event_id.clone(),
            event: e.clone(),
        })
        .collect();
    let mut chunks = chunk(
        plan(latest_per_key(deliveries), &HashMap::new()).transitions,
        MAX_TRANSACTION_ACTIONS,
    );
    assert_eq!(chunks.len(), 1);
    chunks.remove(0)
}

#[tokio::test]
async fn a_transaction_conflict_is_re_read_re_planned_and_counted_once() {
    let tap = DynamoTap::new();
    let (store, _) = stores(&tap).await;
    let events = burst_events("conflict", 30, 31);
    tap.cancel_transaction(1, &[(Action::Index(3), "TransactionConflict")]);
    let outcome = apply_batch(&store, messages(&events)).await;
    assert_eq!(tap.faults_injected(), 1);
    assert_eq!(outcome.conflicts, 1, "{outcome:?}");
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.applied.len(), 30);
    assert_eq!(
        tap.transactions_seen(),
        2,
        "re-planned and committed once more"
    );
    assert_eq!(
        read_all_counters(&store, "conflict", 2).await,
        ground_truth(&events)
    );
}

#[tokio::test]
async fn a_condition_failed_by_a_concurrent_writer_is_re_read_and_the_newer_answer_stays() {
    let tap = DynamoTap::new();
    let (store, other) = stores(&tap).await;
    let events = burst_events("race", 20, 32);
    // Another consumer commits a later answer of respondent 7 while this batch's transaction runs:
    // DynamoDB cancels the batch with ConditionalCheckFailed at respondent 7's record.
    let mut newer = events[7].clone();
    newer.event_id = "newer".into();
    newer.answered_at += 60_000;
    newer.score = (events[7].score + 5) % 11;
    let concurrent = newer.clone();
    tap.cancel_transaction_after(
        1,
        &[(
            Action::Event(events[7].event_id.clone()),
            "ConditionalCheckFailed",
        )],
        move || {
            let (other, concurrent) = (other.clone(), concurrent.clone());
            async move {
                let o = apply_batch(&other, messages(&[concurrent])).await;
                assert_eq!(o.applied.len(), 1, "{o:?}");
            }
        },
    );
    let outcome = apply_batch(&store, messages(&events)).await;
    assert_eq!(tap.faults_injected(), 1);
    assert_eq!(outcome.conflicts, 1, "{outcome:?}");
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.superseded, vec!["m7".to_string()], "{outcome:?}");
    assert_eq!(outcome.applied.len(), 19);
    let mut all = events.clone();
    all.push(newer.clone());
    assert_eq!(
        read_all_counters(&store, "race", 2).await,
        ground_truth(&all)
    );
    let stored = store.load_records(&[newer.key()]).await.unwrap();
    assert_eq!(stored[&newer.key()].event_id, "newer");
}

#[tokio::test]
async fn condition_failures_report_the_indexes_of_the_records_that_moved() {
    let tap = DynamoTap::new();
    let (store, _) = stores(&tap).await;
    let c = one_chunk(&burst_events("indexes", 10, 33));
    tap.cancel_transaction(
        1,
        &[
            (Action::Index(2), "ConditionalCheckFailed"),
            (Action::Index(6), "ConditionalCheckFailed"),
        ],
    );
    assert_eq!(
        store.commit(&c).await.unwrap(),
        CommitOutcome::Conflicted(vec![2, 6])
    );
}

#[tokio::test]
async fn a_throttling_only_cancellation_is_transient_and_writes_nothing() {
    let tap = DynamoTap::new();
    let (store, _) = stores(&tap).await;
    let events = burst_events("throttled", 12, 34);
    let c = one_chunk(&events);
    let counter_index = c.transitions.len();
    tap.cancel_transaction(
        1,
        &[
            (Action::Index(0), "ThrottlingError"),
            (Action::Index(counter_index), "ThrottlingError"),
        ],
    );
    let err = store.commit(&c).await.unwrap_err();
    assert!(matches!(err, StoreError::Transient(_)), "{err}");
    // Through the aggregator: every message is handed back for redelivery, nothing is counted.
    tap.cancel_transaction(2, &[(Action::Index(1), "ThrottlingError")]);
    let outcome = apply_batch(&store, messages(&events)).await;
    assert_eq!(outcome.failed.len(), 12, "{outcome:?}");
    assert!(outcome.rejected.is_empty() && outcome.applied.is_empty());
    assert!(read_all_counters(&store, "throttled", 2).await.is_empty());
    // Redelivered once the table has capacity again: counted exactly once.
    let outcome = apply_batch(&store, messages(&events)).await;
    assert_eq!(outcome.applied.len(), 12, "{outcome:?}");
    assert_eq!(
        read_all_counters(&store, "throttled", 2).await,
        ground_truth(&events)
    );
}

#[tokio::test]
async fn a_validation_error_in_the_cancellation_reasons_is_permanent() {
    let tap = DynamoTap::new();
    let (store, _) = stores(&tap).await;
    let c = one_chunk(&burst_events("invalid", 4, 35));
    tap.cancel_transaction(1, &[(Action::Index(1), "ValidationError")]);
    let err = store.commit(&c).await.unwrap_err();
    assert!(matches!(err, StoreError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn a_transaction_carrying_a_rejected_event_fails_permanently_and_others_commit() {
    let tap = DynamoTap::new();
    let (store, _) = stores(&tap).await;
    let events = burst_events("poison", 6, 36);
    tap.reject_event(&events[2].event_id);
    let err = store.commit(&one_chunk(&events[..3])).await.unwrap_err();
    assert!(matches!(err, StoreError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("ValidationException"), "{err}");
    assert_eq!(
        store.commit(&one_chunk(&events[3..])).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        read_all_counters(&store, "poison", 2).await,
        ground_truth(&events[3..])
    );
}
