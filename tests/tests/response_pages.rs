//! The `ResponseReader` contract on both stores: the embedded store and DynamoDB on a moto server
//! (the `by_time` index): a survey's responses newest first, in cursor pages that neither skip nor
//! repeat one (answers sharing a millisecond included), bounded by the range (start included, end
//! excluded), with long comments and properties read back from their detail items.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::explore::{ResponseCursor, StoredResponse};
use sondeo_domain::ports::{ResponseReader, SurveyStore};
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::survey::{Locale, Survey, SurveyKind, Touchpoint};
use sondeo_embedded::EmbeddedStore;
use sondeo_tests::*;
use std::collections::{BTreeMap, HashSet};

const T0: i64 = 1_780_000_000_000;

fn survey() -> Survey {
    Survey {
        id: "pages".into(),
        kind: SurveyKind::Nps,
        question: "Q?".into(),
        follow_up: String::new(),
        locale: Locale::En,
        touchpoints: vec![Touchpoint {
            slug: "tp".into(),
            stage: None,
        }],
        public_key: None,
        brand: None,
        frequency_cap_days: None,
    }
}

/// 260 answers: pairs share a millisecond; every tenth has a comment long enough (1.5 KB) to
/// move to a detail item in DynamoDB.
fn events() -> Vec<ResponseEvent> {
    (0..260)
        .map(|i: i64| ResponseEvent {
            event_id: format!("{i:032x}"),
            survey: "pages".into(),
            touchpoint: "tp".into(),
            respondent: format!("resp-{i}"),
            kind: SurveyKind::Nps,
            score: i % 11,
            comment: (i % 10 == 0).then(|| format!("{i} {}", "long comment ".repeat(120))),
            properties: BTreeMap::from([("n".to_string(), i.to_string())]),
            answered_at: T0 + (i / 2) * 1000,
            source: Source::Api,
            send: String::new(),
            click: false,
        })
        .collect()
}

/// Reads every page of `from..to` with `limit` per page.
async fn all_pages(
    store: &dyn ResponseReader,
    from: i64,
    to: i64,
    limit: usize,
) -> Vec<StoredResponse> {
    let mut out = Vec::new();
    let mut after: Option<ResponseCursor> = None;
    loop {
        let page = store
            .responses_page("pages", from, to, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit);
        let done = page.len() < limit;
        after = page.last().map(StoredResponse::cursor);
        out.extend(page);
        if done {
            return out;
        }
    }
}

async fn contract(store: &dyn ResponseReader) {
    let all = all_pages(store, T0, T0 + 1_000_000, 37).await;
    assert_eq!(all.len(), 260);
    let ids: HashSet<&str> = all.iter().map(|r| r.event.event_id.as_str()).collect();
    assert_eq!(ids.len(), 260, "a response came twice");
    assert!(all
        .windows(2)
        .all(|w| w[0].event.answered_at >= w[1].event.answered_at));
    assert_eq!(all[0].event.answered_at, T0 + 129_000);
    for r in &all {
        let i: i64 = r.event.properties["n"].parse().unwrap();
        assert_eq!(r.event.score, i % 11);
        if i % 10 == 0 {
            let c = r.event.comment.as_deref().unwrap();
            assert!(c.starts_with(&format!("{i} long comment")) && c.len() > 1400);
        } else {
            assert_eq!(r.event.comment, None);
        }
        assert!(!r.automated);
    }
    // The range: start included, end excluded.
    let some = all_pages(store, T0 + 10_000, T0 + 20_000, 5).await;
    let times: HashSet<i64> = some.iter().map(|r| r.event.answered_at).collect();
    assert_eq!(some.len(), 20);
    assert!(times.contains(&(T0 + 10_000)) && !times.contains(&(T0 + 20_000)));
    // A cursor beyond the range's end starts at the end; an empty range is empty.
    let beyond = ResponseCursor {
        answered_at: T0 + 5_000_000,
        id: "ff".into(),
    };
    let page = store
        .responses_page("pages", T0, T0 + 2_000, Some(&beyond), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 4);
    assert!(store
        .responses_page("pages", T0 + 5, T0 + 5, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .responses_page("other", T0, T0 + 1_000_000, None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn embedded_store_pages_responses_newest_first() {
    let store = EmbeddedStore::in_memory().unwrap();
    store.create_survey(&survey()).await.unwrap();
    deliver_in_order(&store, &events(), 25).await;
    contract(&store).await;
}

#[tokio::test]
async fn dynamodb_pages_responses_newest_first_through_the_by_time_index() {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique("pages")).await;
    let store = DynamoStore::new(client, table);
    store.create_survey(&survey()).await.unwrap();
    deliver_in_order(&store, &events(), 25).await;
    contract(&store).await;
}
