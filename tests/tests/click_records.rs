//! Records of clicks and explicit answers on both stores (SQLite, and DynamoDB on moto): the
//! record keeps its clicks and revision, a state-only change (the answer stays) is an update, a
//! scanner's burst is set aside, an explicit answer beats every click, and redelivery changes
//! nothing; an explicit answer without a comment keeps the comment it replaces.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::metrics::{source_slot, Histogram};
use sondeo_domain::ports::{CounterReader, ResponseLedger, ResponseReader};
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::survey::SurveyKind;
use sondeo_domain::time::Day;
use sondeo_embedded::EmbeddedStore;
use sondeo_tests::{create_table, moto_config, unique};

const T: i64 = 1_790_000_000_000;

fn event(id: &str, score: i64, at: i64, click: bool) -> ResponseEvent {
    ResponseEvent {
        event_id: id.into(),
        survey: "s".into(),
        touchpoint: "t".into(),
        respondent: "ana@example.com".into(),
        kind: SurveyKind::Nps,
        score,
        comment: (!click).then(|| "the courier was late".to_string()),
        properties: Default::default(),
        answered_at: at,
        source: Source::Link,
        send: String::new(),
        click,
    }
}

async fn totals<S: CounterReader + ?Sized>(store: &S) -> Histogram {
    let day = Day::from_unix_ms(T);
    let mut all = Histogram::default();
    for row in store
        .read_counters("s", day.plus(-1), day.plus(1))
        .await
        .unwrap()
    {
        all.merge(&row.histogram);
    }
    all
}

async fn apply<L: ResponseLedger + ?Sized>(store: &L, events: &[ResponseEvent]) {
    let messages = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                format!("m{i}-{}", e.event_id),
                serde_json::to_string(e).unwrap(),
            )
        })
        .collect();
    let out = apply_batch(store, messages).await;
    assert!(out.failed.is_empty() && out.rejected.is_empty(), "{out:?}");
}

/// Counted answers, the count at `score`, answers set aside, and link answers.
async fn seen<S: CounterReader + ?Sized>(store: &S, score: u16) -> (i64, i64, i64, i64) {
    let h = totals(store).await;
    let at = h.slots.get(&score).copied().unwrap_or(0);
    let link = h
        .slots
        .get(&source_slot(Source::Link))
        .copied()
        .unwrap_or(0);
    (h.n, at, h.automated(), link)
}

async fn the_sequence<S: ResponseLedger + CounterReader>(store: &S) {
    let key = event("a", 5, T, true).key();
    // A person's click counts.
    apply(store, &[event("a", 5, T + 1_000, true)]).await;
    assert_eq!(seen(store, 5).await, (1, 1, 0, 1));
    // An earlier click of the same score arrives late: the answer stays, the record keeps it.
    apply(store, &[event("b", 5, T, true)]).await;
    assert_eq!(seen(store, 5).await, (1, 1, 0, 1));
    let r = store
        .load_records(std::slice::from_ref(&key))
        .await
        .unwrap()[&key]
        .clone();
    assert_eq!((r.event_id.as_str(), r.clicks.len(), r.rev), ("a", 2, 2));
    // Another score within seconds: a scanner's burst, set aside.
    apply(store, &[event("c", 2, T + 2_000, true)]).await;
    assert_eq!(seen(store, 5).await, (0, 0, 1, 0));
    // The person's explicit answer beats the clicks.
    apply(store, &[event("d", 8, T + 3_000, false)]).await;
    assert_eq!(seen(store, 8).await, (1, 1, 0, 1));
    // Opening the email again later changes nothing, and neither does redelivering everything.
    apply(store, &[event("e", 9, T + 90_000, true)]).await;
    let all: Vec<ResponseEvent> = [
        event("a", 5, T + 1_000, true),
        event("b", 5, T, true),
        event("c", 2, T + 2_000, true),
        event("d", 8, T + 3_000, false),
        event("e", 9, T + 90_000, true),
    ]
    .into();
    apply(store, &all).await;
    assert_eq!(seen(store, 8).await, (1, 1, 0, 1));
    let r = store
        .load_records(std::slice::from_ref(&key))
        .await
        .unwrap()[&key]
        .clone();
    assert_eq!(
        (r.event_id.as_str(), r.automated, r.click),
        ("d", false, false)
    );
}

/// An explicit answer without a comment (the score changed on the page after Back, the form
/// sent again with an empty box) keeps the comment of the answer it replaces, short or long
/// (a long one lives in a detail item on DynamoDB); a new comment replaces it.
async fn the_comment_stays<S: ResponseLedger + ResponseReader>(store: &S) {
    for (respondent, comment) in [
        ("ana@example.com", "the courier was late".to_string()),
        ("bo@example.com", "long ".repeat(400)),
    ] {
        let answer = |id: &str, score: i64, at: i64, comment: Option<&str>| ResponseEvent {
            respondent: respondent.into(),
            comment: comment.map(str::to_string),
            ..event(id, score, at, false)
        };
        let latest = || async {
            let page = store
                .responses_page("s", T - 86_400_000, T + 86_400_000, None, 10)
                .await
                .unwrap();
            let r = page
                .into_iter()
                .find(|r| r.event.respondent == respondent)
                .unwrap();
            (r.event.score, r.event.comment)
        };
        apply(store, &[answer("p1", 9, T, Some(&comment))]).await;
        // The score changed on the page: no comment field.
        apply(store, &[answer("p2", 7, T + 5_000, None)]).await;
        assert_eq!(latest().await, (7, Some(comment.clone())));
        // The form sent again with an empty box, then a click on the email link.
        apply(store, &[answer("p3", 6, T + 9_000, Some("  "))]).await;
        apply(store, &[event("p4", 2, T + 20_000, true)]).await;
        assert_eq!(latest().await, (6, Some(comment.clone())));
        // A new comment replaces it; the same answers again change nothing.
        apply(store, &[answer("p5", 6, T + 30_000, Some("fixed now"))]).await;
        apply(
            store,
            &[
                answer("p1", 9, T, Some(&comment)),
                answer("p2", 7, T + 5_000, None),
            ],
        )
        .await;
        assert_eq!(latest().await, (6, Some("fixed now".to_string())));
    }
}

#[tokio::test]
async fn clicks_and_answers_on_sqlite() {
    the_sequence(&EmbeddedStore::in_memory().unwrap()).await;
    the_comment_stays(&EmbeddedStore::in_memory().unwrap()).await;
}

#[tokio::test]
async fn clicks_and_answers_on_dynamodb() {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique("clicks")).await;
    the_sequence(&DynamoStore::new(client.clone(), table)).await;
    let table = create_table(&client, &unique("comments")).await;
    the_comment_stays(&DynamoStore::new(client, table)).await;
}
