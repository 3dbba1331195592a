//! Cost of one million responses on AWS list prices, from request counts measured on a local run.
//!
//! Drives the same handlers the Lambda functions run (in-process, embedded storage): every
//! response is a one-click link (the page `GET` and its answer `POST`), a share of respondents also
//! send a comment (a second `POST`). The queue is then drained with the aggregator's own code in
//! batches of the template's SQS `BatchSize`, counting DynamoDB items written and keys read.
//! Memory sizes and the batch size are read from `infra/template.yaml`.
//!
//! Durations are billed per millisecond: measured handler time plus an allowance for each AWS call
//! the handler makes (locally those calls hit SQLite, not the network); the allowances are below.
//!
//! Run: `cargo bench -p sondeo-tests --bench cost` (env RESPONSES to change the sample size)

use bytes::Bytes;
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::{LocalStack, DEMO_SURVEY};
use sondeo_local::server::dispatch;
use sondeo_tests::CountingLedger;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// us-east-1 list prices (US$), as published on the AWS pricing pages; last checked 2025-11.
mod price {
    /// HTTP API, per million requests (first 300 million a month).
    pub const HTTP_API_PER_M: f64 = 1.00;
    /// Lambda, per million invocations.
    pub const LAMBDA_PER_M: f64 = 0.20;
    /// Lambda arm64, per GB-second (first 7.5 billion GB-s a month).
    pub const LAMBDA_ARM_GBS: f64 = 0.000_013_333_4;
    /// SQS standard queue, per million requests (after the first million a month).
    pub const SQS_PER_M: f64 = 0.40;
    /// DynamoDB on-demand, per million write request units.
    pub const DDB_WRU_PER_M: f64 = 0.625;
    /// DynamoDB on-demand, per million read request units.
    pub const DDB_RRU_PER_M: f64 = 0.125;
    /// CloudWatch Logs ingestion (standard class), per GB.
    pub const LOGS_PER_GB: f64 = 0.50;
}

/// Allowances (ms) for AWS calls that locally go to SQLite: typical in-region latencies.
const SQS_SEND_MS: f64 = 8.0;
const DDB_BATCH_GET_MS: f64 = 6.0;
const DDB_TRANSACT_MS: f64 = 12.0;
/// Bytes of log per invocation from the Lambda platform (JSON start/report lines), and per API request (access log).
const PLATFORM_LOG_BYTES: f64 = 600.0;
const ACCESS_LOG_BYTES: f64 = 350.0;
/// Bytes of our own log lines: one per accepted answer (collect), one metrics line per batch (aggregate).
const ANSWER_LOG_BYTES: f64 = 330.0;
const BATCH_LOG_BYTES: f64 = 600.0;
/// Share of respondents who also send a comment.
const COMMENT_SHARE: f64 = 0.2;

fn template_value(template: &serde_yaml::Value, path: &[&str]) -> Option<f64> {
    let mut v = template;
    for p in path {
        v = v.get(*p)?;
    }
    v.as_f64().or_else(|| v.as_i64().map(|i| i as f64))
}

fn request(method: &str, uri: String, body: &'static str) -> sondeo_http::Request {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1")
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(body.as_bytes()))
        .expect("request")
}

#[tokio::main]
async fn main() {
    let responses: usize = std::env::var("RESPONSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .expect("read infra/template.yaml");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template is YAML");
    let default_mb =
        template_value(&template, &["Globals", "Function", "MemorySize"]).unwrap_or(128.0);
    let fn_mb = |name: &str| {
        template_value(&template, &["Resources", name, "Properties", "MemorySize"])
            .unwrap_or(default_mb)
    };
    let (collect_mb, aggregate_mb) = (fn_mb("CollectFunction"), fn_mb("AggregateFunction"));
    let batch_size = template
        .get("Resources")
        .and_then(|r| r.as_mapping())
        .and_then(|m| {
            m.values().find_map(|res| {
                (res.get("Type")?.as_str()? == "AWS::Lambda::EventSourceMapping")
                    .then(|| template_value(res, &["Properties", "BatchSize"]))?
            })
        })
        .unwrap_or(10.0) as usize;

    let dir = std::env::temp_dir().join(format!("sondeo-cost-{:08x}", rand::random::<u32>()));
    let stack = LocalStack::open(&dir, None).await.expect("local stack");
    stack.ensure_demo_survey().await.expect("demo survey");
    let now = sondeo_domain::time::now_ms() / 1000;

    // 1. The collect function: page view and answer for every response, comments for some.
    let (mut http_requests, mut collect_ms, mut enqueued) = (0usize, 0f64, 0usize);
    for i in 0..responses {
        let claims = LinkClaims {
            survey: DEMO_SURVEY.into(),
            touchpoint: "post-purchase".into(),
            respondent: format!("r{i}@example.com"),
            issued_at: now,
            expires_at: now + 3600,
        };
        let token = stack.keyring.sign(&claims).expect("sign");
        let mut calls = vec![
            request("GET", format!("/r/{token}?score=9"), ""),
            request("POST", format!("/r/{token}"), "score=9"),
        ];
        if (i as f64) < responses as f64 * COMMENT_SHARE {
            calls.push(request(
                "POST",
                format!("/r/{token}"),
                "score=9&comment=Fast+delivery",
            ));
        }
        for req in calls {
            let posts = req.method() == http::Method::POST;
            let started = Instant::now();
            let resp = dispatch(&stack, req).await;
            let local_ms = started.elapsed().as_secs_f64() * 1000.0;
            assert!(
                resp.status().is_success(),
                "{}",
                String::from_utf8_lossy(resp.body())
            );
            http_requests += 1;
            let billed = (local_ms + if posts { SQS_SEND_MS } else { 0.0 })
                .ceil()
                .max(1.0);
            collect_ms += billed;
            enqueued += usize::from(posts);
        }
    }

    // 2. The aggregate function: the queue drained in batches of the template's batch size.
    let ledger = CountingLedger::new(stack.store.clone());
    let (mut batches, mut aggregate_ms) = (0usize, 0f64);
    loop {
        let batch = stack.store.receive(batch_size, 60_000).expect("receive");
        if batch.is_empty() {
            break;
        }
        let ids_before = (
            ledger.reads.load(Ordering::Relaxed),
            ledger.transactions.load(Ordering::Relaxed),
        );
        let started = Instant::now();
        let outcome = apply_batch(&ledger, batch).await;
        let local_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(outcome.failed.is_empty());
        let ids: Vec<String> = outcome
            .applied
            .iter()
            .chain(&outcome.superseded)
            .cloned()
            .collect();
        stack.store.ack(&ids).expect("ack");
        let reads = ledger.reads.load(Ordering::Relaxed) - ids_before.0;
        let txs = ledger.transactions.load(Ordering::Relaxed) - ids_before.1;
        aggregate_ms +=
            (local_ms + reads as f64 * DDB_BATCH_GET_MS + txs as f64 * DDB_TRANSACT_MS).ceil();
        batches += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);

    let per_m = 1_000_000.0 / responses as f64;
    let wru = 2.0 * ledger.items.load(Ordering::Relaxed) as f64;
    let rru = ledger.keys_read.load(Ordering::Relaxed) as f64;
    let invocations = (http_requests + batches) as f64;
    // SQS: one SendMessage per answer; the event source mapping's ReceiveMessage and DeleteMessageBatch per batch.
    let sqs_requests = enqueued as f64 + 2.0 * batches as f64;
    let gbs =
        collect_ms / 1000.0 * collect_mb / 1024.0 + aggregate_ms / 1000.0 * aggregate_mb / 1024.0;
    // What the template deploys decides which lines cost: an API Gateway front (per request, with
    // an access log) or function URLs (free); Lambda's START/REPORT lines unless system logs are
    // at WARN; the per-answer log line only at debug level.
    let resources = template.get("Resources").and_then(|r| r.as_mapping());
    let http_api = resources.is_some_and(|m| {
        m.values()
            .any(|r| r.get("Type").and_then(|t| t.as_str()) == Some("AWS::ApiGatewayV2::Api"))
    });
    let parameter_default = |name: &str| {
        template
            .get("Parameters")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("Default"))
            .and_then(|d| d.as_str())
            .map(str::to_string)
    };
    let platform_lines = parameter_default("SystemLogLevel").as_deref() != Some("WARN");
    let answer_lines = matches!(
        parameter_default("LogLevel").as_deref(),
        Some("debug" | "trace")
    );
    let log_gb = (if platform_lines {
        invocations * PLATFORM_LOG_BYTES
    } else {
        0.0
    } + if http_api {
        http_requests as f64 * ACCESS_LOG_BYTES
    } else {
        0.0
    } + if answer_lines {
        enqueued as f64 * ANSWER_LOG_BYTES
    } else {
        0.0
    } + batches as f64 * BATCH_LOG_BYTES)
        / 1e9;

    let lines = [
        (
            if http_api {
                "HTTP API requests"
            } else {
                "function URL requests (free)"
            },
            http_requests as f64 * per_m,
            "requests",
            if http_api {
                http_requests as f64 * per_m / 1e6 * price::HTTP_API_PER_M
            } else {
                0.0
            },
        ),
        (
            "Lambda invocations",
            invocations * per_m,
            "invocations",
            invocations * per_m / 1e6 * price::LAMBDA_PER_M,
        ),
        (
            "Lambda compute (arm64)",
            gbs * per_m,
            "GB-s",
            gbs * per_m * price::LAMBDA_ARM_GBS,
        ),
        (
            "SQS requests",
            sqs_requests * per_m,
            "requests",
            sqs_requests * per_m / 1e6 * price::SQS_PER_M,
        ),
        (
            "DynamoDB writes",
            wru * per_m,
            "WRU",
            wru * per_m / 1e6 * price::DDB_WRU_PER_M,
        ),
        (
            "DynamoDB reads",
            rru * per_m,
            "RRU",
            rru * per_m / 1e6 * price::DDB_RRU_PER_M,
        ),
        (
            "CloudWatch Logs ingestion",
            log_gb * per_m,
            "GB",
            log_gb * per_m * price::LOGS_PER_GB,
        ),
    ];
    println!("Cost of one million responses, us-east-1 list prices (checked 2025-11), template defaults:");
    println!("  measured on {responses} local responses: {http_requests} HTTP requests, {enqueued} answers enqueued, {batches} aggregator batches of up to {batch_size}");
    println!("  collect {collect_mb} MB, aggregate {aggregate_mb} MB; billed ms = measured handler time + AWS call allowance");
    println!(
        "{:<28} {:>16} {:<12} {:>10}",
        "item", "quantity", "unit", "US$"
    );
    let mut total = 0.0;
    for (name, qty, unit, usd) in lines {
        total += usd;
        println!("{name:<28} {qty:>16.1} {unit:<12} {usd:>10.3}");
    }
    println!(
        "{:<28} {:>16} {:<12} {total:>10.3}",
        "total per million responses", "", ""
    );
    println!("not per response: Secrets Manager US$0.80/month (2 secrets), the event source mapping's idle polling, alarms; free tiers not deducted");
    println!(
        "goal (issue 4): <= US$3.00 per million responses: {}",
        if total <= 3.0 { "met" } else { "NOT met" }
    );
}
