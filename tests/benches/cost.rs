//! Cost of one million responses on AWS list prices, from requests counted on a local run.
//!
//! Drives the same handlers the Lambda functions run (in-process, the embedded queue): every
//! response is a one-click link: the click (`GET /r/{token}?score=N`) records the answer and
//! shows the page, whose script sends nothing on load. A share of respondents send a comment
//! later, as its own `POST`, event and record write (it arrives well after the score, in another
//! batch). The queue is drained with the aggregator's own code, in batches of
//! the template's SQS `BatchSize`, into the real `DynamoStore` on a moto server, and a tap on the
//! DynamoDB client sizes every request DynamoDB accepted as DynamoDB bills it
//! (`sondeo_tests::dynamo_wire`). SQS requests are counted per call: one `SendMessage` per answer;
//! per batch of n messages, the event source mapping's ceil(n/10) `ReceiveMessage` and
//! ceil(n/10) `DeleteMessageBatch` (at most 10 messages per call). Memory sizes and the batch
//! size are read from `infra/template.yaml`.
//!
//! Durations are billed per millisecond: collect is the measured handler time plus an allowance
//! for its `SendMessage` (locally the queue is SQLite); aggregate is stated: per invocation, a
//! handler allowance plus a typical in-region latency for each DynamoDB request it made (moto's
//! latency is not DynamoDB's). The allowances are below.
//!
//! Run (moto on 127.0.0.1, `AWS_ENDPOINT_URL` set as in scripts/test.sh):
//! `cargo bench -p sondeo-tests --bench cost` (env RESPONSES to change the sample size, default
//! 5,000: moto copies the whole table for every transaction, so larger runs slow down quadratically)

use bytes::Bytes;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::aggregate::apply_batch;
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::LocalStack;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_local::server::dispatch;
use sondeo_tests::dynamo_wire::DynamoTap;
use sondeo_tests::{create_table, moto_config, unique};
use std::time::Instant;

/// us-east-1 list prices (US$), as published on the AWS pricing pages; last checked 2025-11
/// (DynamoDB on-demand after the November 2024 reduction).
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

/// Allowance (ms) for collect's `SendMessage`, which locally goes to SQLite: a typical in-region latency.
const SQS_SEND_MS: f64 = 8.0;
/// Stated aggregate durations (ms): handler work per invocation, and per DynamoDB request.
const AGGREGATE_HANDLER_MS: f64 = 3.0;
const DDB_BATCH_GET_MS: f64 = 6.0;
const DDB_BATCH_WRITE_MS: f64 = 8.0;
const DDB_TRANSACT_MS: f64 = 12.0;
/// Most messages in one SQS `ReceiveMessage` or `DeleteMessageBatch`.
const SQS_MESSAGES_PER_CALL: usize = 10;
/// Length of the comments sent (characters): a typical short paragraph.
const COMMENT_CHARS: usize = 200;
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

/// Requests and billed time counted over the run.
#[derive(Default)]
struct Counts {
    http_requests: usize,
    collect_ms: f64,
    enqueued: usize,
    batches: usize,
    aggregate_ms: f64,
    sqs_receives: usize,
    sqs_deletes: usize,
}

impl Counts {
    /// Sends one request to the collect handler and bills its time.
    async fn collect(&mut self, stack: &LocalStack, req: sondeo_http::Request) {
        let depth = || stack.store.queue_depth().map(|d| d.0).unwrap_or(0);
        let before = depth();
        let started = Instant::now();
        let resp = dispatch(stack, req).await;
        let local_ms = started.elapsed().as_secs_f64() * 1000.0;
        // What the request enqueued (a click's GET and an answer's POST each enqueue one event).
        let sent = depth().saturating_sub(before) > 0;
        assert!(
            resp.status().is_success(),
            "{}",
            String::from_utf8_lossy(resp.body())
        );
        self.http_requests += 1;
        self.collect_ms += (local_ms + if sent { SQS_SEND_MS } else { 0.0 })
            .ceil()
            .max(1.0);
        self.enqueued += usize::from(sent);
    }

    /// Drains the queue in batches of `batch_size` into DynamoDB, as the event source mapping would.
    async fn drain(
        &mut self,
        stack: &LocalStack,
        ledger: &DynamoStore,
        tap: &DynamoTap,
        batch_size: usize,
    ) {
        loop {
            let batch = stack.store.receive(batch_size, 60_000).expect("receive");
            if batch.is_empty() {
                return;
            }
            let calls = batch.len().div_ceil(SQS_MESSAGES_PER_CALL);
            let before = tap.counts();
            let outcome = apply_batch(ledger, batch).await;
            assert!(
                outcome.failed.is_empty() && outcome.rejected.is_empty(),
                "{outcome:?}"
            );
            let after = tap.counts();
            let made = |op: &str| (after.count(op) - before.count(op)) as f64;
            self.aggregate_ms += AGGREGATE_HANDLER_MS
                + made("BatchGetItem") * DDB_BATCH_GET_MS
                + made("BatchWriteItem") * DDB_BATCH_WRITE_MS
                + made("TransactWriteItems") * DDB_TRANSACT_MS;
            let ids: Vec<String> = outcome
                .applied
                .iter()
                .chain(&outcome.superseded)
                .cloned()
                .collect();
            stack.store.ack(&ids).expect("ack");
            self.sqs_receives += calls;
            self.sqs_deletes += ids.len().div_ceil(SQS_MESSAGES_PER_CALL);
            self.batches += 1;
        }
    }
}

#[tokio::main]
async fn main() {
    let responses: usize = std::env::var("RESPONSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
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
    let sdk = moto_config().await;
    let tap = DynamoTap::new();
    let client = tap.client(&sdk);
    let table = create_table(&client, &unique("cost")).await;
    tap.reset_counts();
    let ledger = DynamoStore::new(client.clone(), table.clone());
    let comment_body: &'static str = Box::leak(
        format!(
            "score=9&comment={}",
            "Fast+delivery+and+a+friendly+courier.+"
                .chars()
                .cycle()
                .take(COMMENT_CHARS)
                .collect::<String>()
        )
        .into_boxed_str(),
    );
    let tokens: Vec<String> = (0..responses)
        .map(|i| {
            let claims = LinkClaims {
                survey: DEMO_SURVEY.into(),
                touchpoint: "post-purchase".into(),
                respondent: format!("r{i}@example.com"),
                issued_at: now,
                expires_at: now + 3600,
            };
            stack.keyring.sign(&claims).expect("sign")
        })
        .collect();
    let commenters = (responses as f64 * COMMENT_SHARE).round() as usize;

    let mut c = Counts::default();
    // 1. Scores: the click of every response (it records the answer), then the aggregator.
    for token in &tokens {
        c.collect(&stack, request("GET", format!("/r/{token}?score=9"), ""))
            .await;
    }
    c.drain(&stack, &ledger, &tap, batch_size).await;
    // 2. Comments, later and on their own: a POST, an event and a record write each.
    for token in &tokens[..commenters] {
        c.collect(&stack, request("POST", format!("/r/{token}"), comment_body))
            .await;
    }
    c.drain(&stack, &ledger, &tap, batch_size).await;
    let _ = client.delete_table().table_name(&table).send().await;
    let _ = std::fs::remove_dir_all(&dir);
    let Counts {
        http_requests,
        collect_ms,
        enqueued,
        batches,
        aggregate_ms,
        sqs_receives,
        sqs_deletes,
    } = c;
    let units = tap.counts();

    let per_m = 1_000_000.0 / responses as f64;
    let wru = units.wcu() as f64;
    let rru = units.rcu as f64;
    let sqs_sends = enqueued as f64;
    let sqs_requests = sqs_sends + (sqs_receives + sqs_deletes) as f64;
    let collect_gbs = collect_ms / 1000.0 * collect_mb / 1024.0;
    let aggregate_gbs = aggregate_ms / 1000.0 * aggregate_mb / 1024.0;
    let invocations = (http_requests + batches) as f64;
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
            "Lambda requests, collect",
            http_requests as f64 * per_m,
            "invocations",
            http_requests as f64 * per_m / 1e6 * price::LAMBDA_PER_M,
        ),
        (
            "Lambda compute, collect",
            collect_gbs * per_m,
            "GB-s",
            collect_gbs * per_m * price::LAMBDA_ARM_GBS,
        ),
        (
            "Lambda requests, aggregate",
            batches as f64 * per_m,
            "invocations",
            batches as f64 * per_m / 1e6 * price::LAMBDA_PER_M,
        ),
        (
            "Lambda compute, aggregate",
            aggregate_gbs * per_m,
            "GB-s",
            aggregate_gbs * per_m * price::LAMBDA_ARM_GBS,
        ),
        (
            "SQS SendMessage",
            sqs_sends * per_m,
            "requests",
            sqs_sends * per_m / 1e6 * price::SQS_PER_M,
        ),
        (
            "SQS ReceiveMessage",
            sqs_receives as f64 * per_m,
            "requests",
            sqs_receives as f64 * per_m / 1e6 * price::SQS_PER_M,
        ),
        (
            "SQS DeleteMessageBatch",
            sqs_deletes as f64 * per_m,
            "requests",
            sqs_deletes as f64 * per_m / 1e6 * price::SQS_PER_M,
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
    println!("  counted on {responses} local responses ({commenters} with a later {COMMENT_CHARS}-character comment): {http_requests} HTTP requests, {enqueued} answers enqueued, {batches} aggregator batches of up to {batch_size}");
    println!(
        "  DynamoDB: {} transactions ({} items), {} BatchWriteItem ({} comment items), {} BatchGetItem ({} keys); largest item {} bytes",
        units.count("TransactWriteItems"),
        units.transact_items,
        units.count("BatchWriteItem"),
        units.plain_items,
        units.count("BatchGetItem"),
        units.keys_read,
        units.largest_item
    );
    println!(
        "  SQS: {:.2} requests per response (send per answer; receive and delete per 10 messages of a batch)",
        sqs_requests / responses as f64
    );
    println!("  collect {collect_mb} MB (measured handler time + {SQS_SEND_MS} ms per SendMessage), aggregate {aggregate_mb} MB (stated: {AGGREGATE_HANDLER_MS} ms + {DDB_BATCH_GET_MS} ms per BatchGetItem, {DDB_BATCH_WRITE_MS} ms per BatchWriteItem, {DDB_TRANSACT_MS} ms per transaction)");
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
    println!("not per response: Secrets Manager US$0.80/month (2 secrets); the event source mapping's idle long polling (its pollers each make about 3 empty ReceiveMessage a minute: at 5 pollers about 0.65 M requests, US$0.26, a month); alarms; free tiers not deducted");
    println!(
        "goal (issue 4): <= US$3.00 per million responses: {}",
        if total <= 3.0 { "met" } else { "NOT met" }
    );
}
