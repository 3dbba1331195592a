//! The cost of reading the numbers: `GET /v1/metrics` for one year of daily buckets across 20
//! touchpoints, read from the daily counters (UTC) and from the stored responses (a time zone or
//! a segment), and a page of `GET /v1/responses`.
//!
//! Server time is measured on the embedded store, through the metrics router, as a ratio against
//! a trivial API request in the same process (`GET /v1/surveys`), so it survives a noisy machine.
//! DynamoDB read units come from the same data on a moto server: the items each read returns,
//! sized as DynamoDB bills them (`sondeo_aws::dynamo::item_size`): a Query is billed per started
//! 4 KB of all items it returns (per 1 MB page), half a unit for an eventually consistent read.
//!
//! Run (moto on 127.0.0.1, `AWS_ENDPOINT_URL` set as in scripts/test.sh):
//! `cargo bench -p sondeo-tests --bench metrics_read` (env PER_DAY: answers per touchpoint and day,
//! default 3; RUNS: timed requests per case, default 20)

use aws_sdk_dynamodb::types::AttributeValue;
use http_body_util::BodyExt;
use sondeo_aws::dynamo::{item_size, DynamoStore, BY_TIME_INDEX};
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::time::Day;
use sondeo_domain::token::LinkKeyring;
use sondeo_embedded::EmbeddedStore;
use sondeo_http::admin::{AdminApp, OrdersConfig};
use sondeo_tests::{create_table, deliver_in_order, moto_config, unique};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const KEY: &str = "metrics-read-bench-key-0123456789";
const TOUCHPOINTS: usize = 20;
const FROM: &str = "2026-01-01";
const TO: &str = "2026-12-31";

fn survey() -> Survey {
    let stages = [
        JourneyStage::Awareness,
        JourneyStage::Consideration,
        JourneyStage::Conversion,
        JourneyStage::Retention,
    ];
    Survey {
        id: "year".into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend us?".into(),
        follow_up: "Why?".into(),
        locale: Locale::En,
        touchpoints: (0..TOUCHPOINTS)
            .map(|i| Touchpoint {
                slug: format!("touchpoint-{i:02}"),
                stage: Some(stages[i % stages.len()]),
            })
            .collect(),
        public_key: None,
        brand: None,
        frequency_cap_days: None,
    }
}

/// `per_day` answers per touchpoint and day of 2026, with a plan property and some comments.
fn events(per_day: usize) -> Vec<ResponseEvent> {
    let first: Day = FROM.parse().unwrap();
    let mut out = Vec::new();
    for d in 0..365 {
        let day_ms = i64::from(first.plus(d).days()) * 86_400_000;
        for tp in 0..TOUCHPOINTS {
            for k in 0..per_day {
                let n = out.len();
                out.push(ResponseEvent {
                    event_id: format!("{n:032x}"),
                    survey: "year".into(),
                    touchpoint: format!("touchpoint-{tp:02}"),
                    respondent: format!("r{n}"),
                    kind: SurveyKind::Nps,
                    score: ((n * 7 + k) % 11) as i64,
                    comment: (n % 4 == 0).then(|| "Delivery was quick, thanks".to_string()),
                    properties: [("plan".to_string(), ["free", "pro"][n % 2].to_string())].into(),
                    answered_at: day_ms + (k as i64 * 3 + tp as i64) * 60_000 + 8 * 3_600_000,
                    source: Source::Link,
                    send: String::new(),
                    click: false,
                });
            }
        }
    }
    out
}

async fn get(router: &sondeo_http::HttpService, path: &str) -> usize {
    let req = http::Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.into_body().collect().await.unwrap().to_bytes().len()
}

/// Median time of `runs` requests.
async fn median(router: &sondeo_http::HttpService, path: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        bytes = get(router, path).await;
        times.push(t.elapsed());
    }
    times.sort();
    (times[runs / 2], bytes)
}

/// Read units of a Query's pages: per started 4 KB of each page's items, halved (eventually
/// consistent) unless `consistent`.
fn query_units(pages: &[Vec<HashMap<String, AttributeValue>>], consistent: bool) -> f64 {
    pages
        .iter()
        .map(|items| {
            let bytes: usize = items.iter().map(item_size).sum();
            let units = bytes.div_ceil(4096).max(1) as f64;
            if consistent {
                units
            } else {
                units / 2.0
            }
        })
        .sum()
}

/// Every page of a query, as DynamoDB returns it.
async fn pages(
    build: impl Fn() -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Vec<Vec<HashMap<String, AttributeValue>>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = build().set_exclusive_start_key(start).send().await.unwrap();
        out.push(page.items().to_vec());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

#[tokio::main]
async fn main() {
    let per_day: usize = std::env::var("PER_DAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let events = events(per_day);
    println!(
        "one year ({FROM}..{TO}) of daily buckets across {TOUCHPOINTS} touchpoints, {} answers",
        events.len()
    );

    // Server time on the embedded store, against a trivial request.
    let store = EmbeddedStore::in_memory().unwrap();
    store.create_survey(&survey()).await.unwrap();
    deliver_in_order(&store, &events, 100).await;
    let shared = Arc::new(store);
    let router = sondeo_http::admin::router(AdminApp {
        surveys: shared.clone(),
        counters: shared.clone(),
        responses: shared.clone(),
        export_limits: Default::default(),
        api_keys: ApiKeys::from_list(KEY).unwrap(),
        keyring: LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-bench").unwrap(),
        base_url: None,
        alerts: None,
        imports: None,
        suppressions: shared.clone(),
        orders: OrdersConfig {
            connections: shared.clone(),
            invitations: shared,
            webhook_base_url: None,
        },
    });
    let year = format!("/v1/metrics?survey=year&from={FROM}&to={TO}&bucket=day");
    let cases = [
        ("baseline: GET /v1/surveys", "/v1/surveys".to_string()),
        ("metrics, UTC (counters)", year.clone()),
        (
            "metrics, UTC, compare=previous",
            format!("{year}&compare=previous"),
        ),
        (
            "metrics, tz=Europe/Madrid (responses)",
            format!("{year}&tz=Europe/Madrid"),
        ),
        (
            "metrics, segment=plan:pro (responses)",
            format!("{year}&segment=plan:pro"),
        ),
        (
            "responses page (50, newest first)",
            format!("/v1/responses?survey=year&from={FROM}&to={TO}"),
        ),
    ];
    println!("\nserver time on the embedded store (median of {runs}), against the baseline:");
    let mut baseline = None;
    for (name, path) in &cases {
        let (t, bytes) = median(&router, path, runs).await;
        let base = *baseline.get_or_insert(t);
        println!(
            "  {name:<42} {:>10.2?}  {:>8.1}x baseline  answer {bytes} bytes",
            t,
            t.as_secs_f64() / base.as_secs_f64()
        );
    }

    // Read units on DynamoDB (moto), from the items the reads return.
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique("metrics-read")).await;
    let dynamo = DynamoStore::new(client.clone(), table.clone());
    dynamo.create_survey(&survey()).await.unwrap();
    deliver_in_order(&dynamo, &events, 100).await;
    let counters = pages(|| {
        client
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", AttributeValue::S("C#year".into()))
            .expression_attribute_values(":from", AttributeValue::S(FROM.into()))
            .expression_attribute_values(":to", AttributeValue::S(format!("{TO}#~")))
            .consistent_read(true)
    })
    .await;
    let counter_items: usize = counters.iter().map(Vec::len).sum();
    let counter_bytes: usize = counters.iter().flatten().map(item_size).sum();
    let first: Day = FROM.parse().unwrap();
    let to_ms = i64::from(first.plus(365).days()) * 86_400_000;
    let from_ms = i64::from(first.days()) * 86_400_000 - 2 * 3_600_000;
    let records = pages(|| {
        client
            .query()
            .table_name(&table)
            .index_name(BY_TIME_INDEX)
            .key_condition_expression("pk = :pk AND #at BETWEEN :from AND :to")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":pk", AttributeValue::S("R#year".into()))
            .expression_attribute_values(":from", AttributeValue::N(from_ms.to_string()))
            .expression_attribute_values(":to", AttributeValue::N(to_ms.to_string()))
            .scan_index_forward(false)
    })
    .await;
    let record_items: usize = records.iter().map(Vec::len).sum();
    let record_bytes: usize = records.iter().flatten().map(item_size).sum();
    println!("\nDynamoDB read units of one report (items sized as DynamoDB bills them):");
    println!(
        "  from counters (UTC):     {counter_items} items, {} KB, {:.0} read units (consistent Query), {} pages",
        counter_bytes / 1024,
        query_units(&counters, true),
        counters.len()
    );
    println!(
        "  from responses (zone or segment): {record_items} records, {} KB, {:.0} read units (by_time index, eventually consistent), {} pages",
        record_bytes / 1024,
        query_units(&records, false),
        records.len()
    );
    let usd_per_million_rru = 0.25;
    println!(
        "  on-demand price at US$0.25 per million read units: counters US${:.6}, responses US${:.6} per report",
        query_units(&counters, true) * usd_per_million_rru / 1e6,
        query_units(&records, false) * usd_per_million_rru / 1e6
    );
}
