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
async fn missing_table_is_a_retryable_deployment_fault_not_a_panic() {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let s = DynamoStore::new(client, "no-such-table");
    let err = s.get_survey("x").await.unwrap_err();
    // Fixing the deployment (creating the table) makes the same call succeed.
    assert!(err.is_retryable(), "{err}");
}

fn attr_s(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.into())
}

fn attr_n(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(v.into())
}

#[tokio::test]
async fn a_counter_too_large_for_64_bits_is_left_out_and_the_report_still_reads() {
    let s = store().await;
    let events = generate_events("huge", 200, 200, 2, 3, 27);
    deliver_in_order(&s, &events, 50).await;
    let bad_day = workload_start().plus(1);
    // A day whose sum overflowed (or was edited by hand): wider than any i64.
    aws_sdk_dynamodb::Client::new(&moto_config().await)
        .put_item()
        .table_name(s.table())
        .item("pk", attr_s("C#huge"))
        .item("sk", attr_s(&format!("{bad_day}#tp9")))
        .item("n", attr_n("3"))
        .item("sum", attr_n("99999999999999999999999"))
        .item("s9", attr_n("3"))
        .send()
        .await
        .unwrap();
    let rows = s
        .read_counters("huge", workload_start(), workload_start().plus(3))
        .await
        .expect("a bad counter item must not fail the read");
    assert!(rows.iter().all(|r| r.touchpoint != "tp9"));
    let read: std::collections::BTreeMap<_, _> = rows
        .iter()
        .map(|r| ((r.touchpoint.clone(), r.day), r.histogram.clone()))
        .collect();
    assert_eq!(read, ground_truth(&events));
    let report = sondeo_domain::report::build_report(
        &workload_survey("huge"),
        &rows,
        &sondeo_domain::report::ReportQuery {
            from: workload_start(),
            to: workload_start().plus(3),
            bucket: Default::default(),
            touchpoint: None,
            stage: None,
        },
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.is_object());
}

#[tokio::test]
async fn a_record_number_out_of_range_is_clamped_so_its_answers_are_not_poison() {
    let s = store().await;
    let e = generate_events("clamp", 1, 1, 1, 1, 28).remove(0);
    let key = e.key();
    aws_sdk_dynamodb::Client::new(&moto_config().await)
        .put_item()
        .table_name(s.table())
        .item("pk", attr_s("R#clamp"))
        .item("sk", attr_s(&key.digest))
        .item("at", attr_n("99999999999999999999999"))
        .item("eid", attr_s("edited"))
        .item("slot", attr_n("9"))
        .item("score", attr_n("9"))
        .item("day", attr_n("-99999999999999"))
        .send()
        .await
        .unwrap();
    let loaded = s
        .load_records(std::slice::from_ref(&key))
        .await
        .expect("clamped, not an error");
    assert_eq!(loaded[&key].answered_at, i64::MAX);
    assert_eq!(loaded[&key].day, Day::from_days(i32::MIN));
    // The stored answer is "latest" for good: a new answer is superseded, not a failure.
    let outcome = sondeo_domain::aggregate::apply_batch(
        &s,
        vec![("m".into(), serde_json::to_string(&e).unwrap())],
    )
    .await;
    assert_eq!(outcome.superseded, vec!["m".to_string()], "{outcome:?}");
}

#[tokio::test]
async fn long_comments_leave_the_transactional_record_and_come_back_with_it() {
    let s = store().await;
    let mut events = generate_events("notes", 40, 40, 2, 1, 29);
    for (i, e) in events.iter_mut().enumerate() {
        e.comment = match i % 4 {
            0 => None,
            1 => Some("short and sweet".into()),
            2 => Some("é".repeat(1_000)),
            _ => Some("x".repeat(2_000)),
        };
        if i % 5 == 0 {
            e.properties.insert("plan".into(), "p".repeat(200));
        }
    }
    deliver_in_order(&s, &events, 100).await;
    // The same deliveries on SQLite give the answers DynamoDB must give back, comments included
    // (a later answer without a comment keeps the earlier one's, also from a detail item).
    let reference = sondeo_embedded::EmbeddedStore::in_memory().unwrap();
    deliver_in_order(&reference, &events, 100).await;
    let mut expected = reference.all_responses_async("notes").await.unwrap();
    assert_eq!(expected.len(), latest_events(&events).len());
    let mut got = s.all_responses("notes").await.unwrap();
    expected.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    got.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(got, expected);
    // On the table: every record fits 1 KB; the long comments sit beside it under the same partition.
    let items = aws_sdk_dynamodb::Client::new(&moto_config().await)
        .query()
        .table_name(s.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", attr_s("R#notes"))
        .send()
        .await
        .unwrap();
    let (records, details): (Vec<_>, Vec<_>) = items
        .items()
        .iter()
        .partition(|i| !i["sk"].as_s().unwrap().contains('#'));
    assert_eq!(records.len(), expected.len());
    for r in &records {
        let size = sondeo_aws::dynamo::item_size(r);
        assert!(size <= 1024, "record of {size} bytes");
    }
    let long = expected
        .iter()
        .filter(|e| e.comment.as_ref().is_some_and(|c| c.len() >= 2_000))
        .count();
    assert!(long > 0);
    assert_eq!(details.len(), long);
    for d in &details {
        let sk = d["sk"].as_s().unwrap();
        let (digest, eid) = sk.split_once('#').unwrap();
        assert!(records
            .iter()
            .any(|r| r["sk"].as_s().unwrap() == digest && r["eid"].as_s().unwrap() == eid));
    }
}

/// The latest event of each response (what the records hold).
fn latest_events(
    events: &[sondeo_domain::response::ResponseEvent],
) -> Vec<sondeo_domain::response::ResponseEvent> {
    let mut latest: HashMap<_, &sondeo_domain::response::ResponseEvent> = HashMap::new();
    for e in events {
        let slot = latest.entry(e.key()).or_insert(e);
        if e.version() > slot.version() {
            *slot = e;
        }
    }
    latest.into_values().cloned().collect()
}

#[tokio::test]
async fn sqs_queue_delivers_the_event_as_the_message_body() {
    let sdk = moto_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&client, "responses").await;
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

#[tokio::test]
async fn the_suppression_list_adds_once_lists_and_removes() {
    use sondeo_domain::ports::SuppressionList;
    use sondeo_domain::response::Suppression;
    let store = store().await;
    let entry = |who: &str, via: &str, at: i64| Suppression {
        respondent: who.into(),
        at,
        via: via.into(),
    };
    store
        .suppress(&entry("Ana@Example.com", "link", 1))
        .await
        .unwrap();
    // Added again (another case, later): the first entry stays.
    store
        .suppress(&entry("ana@example.com", "api", 2))
        .await
        .unwrap();
    store.suppress(&entry("c-42", "cli", 3)).await.unwrap();
    let list = store.list_suppressed().await.unwrap();
    assert_eq!(
        list,
        vec![entry("ana@example.com", "link", 1), entry("c-42", "cli", 3)]
    );
    assert!(store.unsuppress("ANA@example.com").await.unwrap());
    assert!(!store.unsuppress("ana@example.com").await.unwrap());
    assert_eq!(
        store.list_suppressed().await.unwrap(),
        vec![entry("c-42", "cli", 3)]
    );

    // Looked up by id, more than one BatchGetItem's 100 keys, duplicates and any case included.
    for i in (0..250).step_by(50) {
        store
            .suppress(&entry(&format!("r{i}@example.com"), "api", 4))
            .await
            .unwrap();
    }
    let mut asked: Vec<String> = (0..250).map(|i| format!("R{i}@Example.com")).collect();
    asked.extend([
        "c-42".to_string(),
        "c-42".to_string(),
        "ana@example.com".to_string(),
    ]);
    let mut found: Vec<String> = store
        .suppressed_among(&asked)
        .await
        .unwrap()
        .into_iter()
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "c-42",
            "r0@example.com",
            "r100@example.com",
            "r150@example.com",
            "r200@example.com",
            "r50@example.com"
        ]
    );
    assert!(store.suppressed_among(&[]).await.unwrap().is_empty());
}
