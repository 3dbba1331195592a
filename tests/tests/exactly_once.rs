//! The exactly-once proof: 10,000 generated answers from 2,000 respondents over 5 touchpoints and
//! 30 days, with answer changes, every message delivered three times in shuffled order in batches
//! of random size; counters must equal a recount from the ground truth — on the embedded store and
//! on DynamoDB (moto), and again when the apply step fails at random points and is retried.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_embedded::EmbeddedStore;
use sondeo_tests::*;
use std::sync::atomic::Ordering;

const EVENTS: usize = 10_000;
const RESPONDENTS: usize = 2_000;
const TOUCHPOINTS: usize = 5;
const DAYS: i32 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_counters_equal_recount_after_triple_shuffled_delivery() {
    let store = EmbeddedStore::in_memory().unwrap();
    let events = generate_events("proof", EVENTS, RESPONDENTS, TOUCHPOINTS, DAYS, 1);
    let truth = ground_truth(&events);
    // The workload really has answer changes: fewer responses than answers.
    let responses: i64 = truth.values().map(|h| h.n).sum();
    assert!(
        responses < EVENTS as i64 && responses > 5_000,
        "{responses} responses"
    );
    deliver_shuffled(&store, &events, 3, 100, 2).await;
    assert_eq!(read_all_counters(&store, "proof", DAYS).await, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_counters_equal_recount_when_apply_fails_at_random_points() {
    let store = FlakyLedger::new(EmbeddedStore::in_memory().unwrap(), 0.15, 3);
    let events = generate_events("proof", EVENTS, RESPONDENTS, TOUCHPOINTS, DAYS, 4);
    deliver_shuffled(&store, &events, 3, 100, 5).await;
    let f = &store.failures;
    assert!(
        f.reads.load(Ordering::Relaxed) > 0
            && f.before_commit.load(Ordering::Relaxed) > 0
            && f.after_commit.load(Ordering::Relaxed) > 0
    );
    assert_eq!(
        read_all_counters(store.inner(), "proof", DAYS).await,
        ground_truth(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_counters_equal_recount_after_triple_shuffled_delivery() {
    let sdk = moto_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&client, &unique("proof")).await;
    let store = DynamoStore::new(client, table);
    let events = generate_events("proof", EVENTS, RESPONDENTS, TOUCHPOINTS, DAYS, 6);
    deliver_shuffled(&store, &events, 3, 100, 7).await;
    assert_eq!(
        read_all_counters(&store, "proof", DAYS).await,
        ground_truth(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_counters_equal_recount_when_apply_fails_at_random_points() {
    let sdk = moto_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&client, &unique("proof")).await;
    let store = FlakyLedger::new(DynamoStore::new(client, table), 0.15, 8);
    let events = generate_events("proof", EVENTS, RESPONDENTS, TOUCHPOINTS, DAYS, 9);
    deliver_shuffled(&store, &events, 3, 100, 10).await;
    let f = &store.failures;
    assert!(
        f.after_commit.load(Ordering::Relaxed) > 0,
        "lost acknowledgements were injected"
    );
    assert_eq!(
        read_all_counters(store.inner(), "proof", DAYS).await,
        ground_truth(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_aggregators_on_the_same_responses_count_each_once() {
    // Two consumers apply overlapping batches at the same time: conditions make one of them
    // re-read and re-plan, and nothing is counted twice.
    let sdk = moto_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&client, &unique("race")).await;
    let store = DynamoStore::new(client, table);
    let events = generate_events("race", 600, 100, 2, 3, 11);
    let ((_, conflicts_a), (_, conflicts_b)) = tokio::join!(
        deliver_shuffled(&store, &events, 1, 50, 12),
        deliver_shuffled(&store, &events, 1, 50, 13)
    );
    assert!(
        conflicts_a + conflicts_b > 0,
        "the consumers really raced on the same records"
    );
    assert_eq!(
        read_all_counters(&store, "race", 3).await,
        ground_truth(&events)
    );
}
