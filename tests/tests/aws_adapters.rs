//! The DynamoDB and SQS adapters against a moto server on 127.0.0.1, with the real SDK clients.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::sqs::SqsQueue;
use sondeo_domain::aggregate::{chunk, latest_per_key, plan, Delivery, MAX_TRANSACTION_ACTIONS};
use sondeo_domain::ports::{
    CommitOutcome, CounterReader, ResponseLedger, ResponseQueue, StoreError, SurveyStore,
};
use sondeo_domain::time::Day;
use sondeo_tests::*;
use std::collections::HashMap;

async fn store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique("adapters")).await;
    DynamoStore::new(client, table)
}

#[tokio::test]
async fn surveys_are_created_once_read_back_and_listed() {
    let s = store().await;
    let mut survey = workload_survey("b-survey");
    survey.public_key = Some("pk_0123456789".into());
    s.create_survey(&survey).await.unwrap();
    s.create_survey(&workload_survey("a-survey")).await.unwrap();
    assert_eq!(
        s.get_survey("b-survey").await.unwrap(),
        Some(survey.clone())
    );
    assert_eq!(s.get_survey("missing").await.unwrap(), None);
    assert!(matches!(
        s.create_survey(&survey).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let ids: Vec<String> = s
        .list_surveys()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids, ["a-survey", "b-survey"]);
}

#[tokio::test]
async fn a_chunk_planned_from_a_stale_read_is_a_conflict_and_writes_nothing() {
    let s = store().await;
    let events = generate_events("stale", 2, 1, 1, 1, 21);
    let (first, second) = (events[0].clone(), events[1].clone());
    let deliver = |e: &sondeo_domain::response::ResponseEvent| {
        vec![Delivery {
            message_id: "m".into(),
            event: e.clone(),
        }]
    };
    // Plan both answers against "no record yet".
    let stale_plan = plan(latest_per_key(deliver(&second)), &HashMap::new());
    let fresh_plan = plan(latest_per_key(deliver(&first)), &HashMap::new());
    let fresh = chunk(fresh_plan.transitions, MAX_TRANSACTION_ACTIONS);
    assert_eq!(s.commit(&fresh[0]).await.unwrap(), CommitOutcome::Committed);
    let stale = chunk(stale_plan.transitions, MAX_TRANSACTION_ACTIONS);
    assert_eq!(
        s.commit(&stale[0]).await.unwrap(),
        CommitOutcome::Conflicted(vec![0])
    );
    let day = Day::from_unix_ms(first.answered_at);
    let rows = s
        .read_counters("stale", day.plus(-1), day.plus(1))
        .await
        .unwrap();
    let n: i64 = rows.iter().map(|r| r.histogram.n).sum();
    assert_eq!(n, 1, "the conflicting transaction added nothing");
    let loaded = s.load_records(&[first.key()]).await.unwrap();
    assert_eq!(loaded[&first.key()].event_id, first.event_id);
}

#[tokio::test]
async fn records_load_in_pages_of_one_hundred_keys() {
    let s = store().await;
    let events = burst_events("paged", 250, 22);
    deliver_shuffled(&s, &events, 1, 100, 23).await;
    let keys: Vec<_> = events.iter().map(|e| e.key()).collect();
    let loaded = s.load_records(&keys).await.unwrap();
    assert_eq!(loaded.len(), 250);
    assert_eq!(s.all_responses("paged").await.unwrap().len(), 250);
}

#[tokio::test]
async fn counter_reads_keep_to_the_date_range() {
    let s = store().await;
    let events = generate_events("range", 300, 300, 3, 10, 24);
    deliver_shuffled(&s, &events, 1, 60, 25).await;
    let from = workload_start().plus(3);
    let to = workload_start().plus(5);
    let rows = s.read_counters("range", from, to).await.unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.day >= from && r.day <= to));
    let truth = ground_truth(&events);
    let expected: i64 = truth
        .iter()
        .filter(|((_, d), _)| *d >= from && *d <= to)
        .map(|(_, h)| h.n)
        .sum();
    assert_eq!(rows.iter().map(|r| r.histogram.n).sum::<i64>(), expected);
}

#[tokio::test]
async fn rejected_messages_are_kept_with_their_reason() {
    let s = store().await;
    s.keep_rejected("msg-1", "{broken", "not a response event")
        .await
        .unwrap();
    let item = aws_sdk_dynamodb::Client::new(&moto_config().await)
        .get_item()
        .table_name(s.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("REJECTED".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("msg-1".into()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().expect("rejected message stored");
    assert_eq!(item["body"].as_s().unwrap(), "{broken");
    assert!(item.contains_key("ttl"));
}

#[tokio::test]
async fn missing_table_is_a_permanent_error_not_a_panic() {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let s = DynamoStore::new(client, "no-such-table");
    let err = s.get_survey("x").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn sqs_queue_delivers_the_event_as_the_message_body() {
    let sdk = moto_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let url = client
        .create_queue()
        .queue_name(unique("responses"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue = SqsQueue::new(client.clone(), url.clone());
    let event = generate_events("sqs", 1, 1, 1, 1, 26).remove(0);
    queue.enqueue(&event).await.unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies.len(), 1);
    let decoded = sondeo_domain::aggregate::decode_message("id", bodies[0]).unwrap();
    assert_eq!(decoded.event, event);
    let missing = SqsQueue::new(client, format!("{url}-missing"));
    assert!(missing.enqueue(&event).await.is_err());
}
