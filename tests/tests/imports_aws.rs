//! The deployed import path against a moto server on 127.0.0.1: `sondeo import`'s remote client
//! over HTTP to the metrics function's router, `POST /v1/imports` onto SQS (SqsQueue,
//! SendMessageBatch), the aggregator from SQS into DynamoDB (DynamoStore), and the metrics'
//! per-source count `import`. Prints rows per second through the API.

use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::sqs::SqsQueue;
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::import::SendRule;
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::token::LinkKeyring;
use sondeo_http::admin::{AdminApp, OrdersConfig};
use sondeo_local::client::ApiClient;
use sondeo_local::import::{import_file, Format, ImportPlan, Mapping};
use sondeo_tests::*;
use std::sync::Arc;

const KEY: &str = "0123456789abcdef-imports-aws";

/// Moves every message on the queue through the aggregator into the store.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, store: &DynamoStore) -> usize {
    let mut applied = 0;
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages: Vec<(String, String)> = got
            .messages()
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.body().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if messages.is_empty() {
            return applied;
        }
        let out = apply_batch(store, messages).await;
        assert!(out.failed.is_empty() && out.rejected.is_empty(), "{out:?}");
        for m in got.messages() {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
        applied += got.messages().len();
    }
}

fn csv_rows(from: usize, to: usize) -> Vec<u8> {
    let mut text = String::from("id,email,score,answered_at\n");
    for i in from..to {
        // One answer a day or so, back from 2024-01-01, scores cycling 0..=10.
        text.push_str(&format!(
            "r{i},person{i}@example.com,{},{}\n",
            i % 11,
            1_704_067_200 - (i as i64) * 3_600
        ));
    }
    text.into_bytes()
}

#[tokio::test]
async fn an_import_through_the_deployed_api_reaches_the_counters_once_and_counts_as_import() {
    let sdk = moto_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = create_table(&dynamodb, &unique("imports")).await;
    let store = Arc::new(DynamoStore::new(dynamodb, table));
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, "imports").await;
    store.create_survey(&workload_survey("hist")).await.unwrap();
    let touchpoint = workload_survey("hist").touchpoints[0].slug.clone();
    // GIVEN the metrics function's router, with imports onto SQS, on a real HTTP port
    let app = AdminApp {
        surveys: store.clone(),
        suppressions: store.clone(),
        counters: store.clone(),
        responses: store.clone(),
        export_limits: Default::default(),
        api_keys: ApiKeys::from_list(KEY).unwrap(),
        keyring: LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-imports").unwrap(),
        base_url: None,
        orders: OrdersConfig {
            connections: store.clone(),
            invitations: store.clone(),
            webhook_base_url: None,
        },
        alerts: None,
        imports: Some(Arc::new(SqsQueue::new(sqs.clone(), url.clone()))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, sondeo_http::admin::routes(app))
            .await
            .unwrap()
    });
    let client = ApiClient::remote(&base, KEY).unwrap();
    let mut mapping = Mapping::default();
    mapping
        .apply([
            "id=id",
            "respondent=email",
            "score=score",
            "answered-at=answered_at",
        ])
        .unwrap();
    let plan = ImportPlan {
        survey: "hist".into(),
        touchpoint: Some(touchpoint),
        mapping,
        zone: None,
        send: SendRule::Default,
        format: Format::Csv,
        dry_run: false,
        preset: None,
    };
    const ROWS: usize = 500;
    // WHEN a file is imported through the API
    let started = std::time::Instant::now();
    let mut rejects = Vec::new();
    let summary = import_file(&client, &plan, &csv_rows(0, ROWS)[..], &mut rejects, |_| {})
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {ROWS} rows through POST /v1/imports onto SQS (moto) in {secs:.2} s: {:.0} rows/s",
        ROWS as f64 / secs
    );
    assert_eq!((summary.imported, summary.refused), (ROWS as u64, 0));
    // AND the aggregator applies the queue
    let applied_at = std::time::Instant::now();
    assert_eq!(drain(&sqs, &url, &store).await, ROWS);
    println!(
        "aggregated {ROWS} imported answers from SQS into DynamoDB (moto) in {:.2} s",
        applied_at.elapsed().as_secs_f64()
    );
    // THEN the metrics count them, as imports
    let metrics = || async {
        let m = client
            .call(
                http::Method::GET,
                "/v1/metrics?survey=hist&from=2023-01-01&to=2024-12-31&bucket=month",
                None,
            )
            .await
            .unwrap();
        m["overall"]["total"].clone()
    };
    let first = metrics().await;
    assert_eq!(first["n"], ROWS as i64, "{first}");
    assert_eq!(first["sources"], serde_json::json!({"import": ROWS}));
    // AND an overlapping file (the last 250 again, 125 new) adds only the new rows
    let summary = import_file(
        &client,
        &plan,
        &csv_rows(ROWS - 250, ROWS + 125)[..],
        &mut rejects,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.imported, 375);
    drain(&sqs, &url, &store).await;
    let second = metrics().await;
    assert_eq!(second["n"], ROWS as i64 + 125, "{second}");
    assert_eq!(second["sources"], serde_json::json!({"import": ROWS + 125}));
}
