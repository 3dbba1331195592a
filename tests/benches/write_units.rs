//! DynamoDB capacity units per answer in the aggregator, measured on the wire: each workload is
//! delivered once, in answer-time order, in SQS batches of 10 and 100, through the shared
//! aggregator into the real `DynamoStore` on a moto server. A tap on the client's HTTP connection
//! (`sondeo_tests::dynamo_wire`) sizes every item of every request DynamoDB accepted as DynamoDB
//! bills it: item size = attribute names + values (strings by UTF-8 bytes, numbers one byte per
//! two significant digits plus one); 2 write units per started KB of each item in a
//! `TransactWriteItems`, 1 per started KB in a plain `BatchWriteItem` (long comments), 1 read unit
//! per key of a consistent `BatchGetItem`. moto bills nothing: the units come from the requests.
//!
//! Workloads: a campaign burst (one survey, touchpoint and day), a live day (3 surveys × 5
//! touchpoints, every answer today) and the mixed workload (2,000 respondents, 5 touchpoints, 30
//! days, answer changes); every answer carries a comment of 0, 200 or 2,000 characters.
//!
//! Run (moto on 127.0.0.1, `AWS_ENDPOINT_URL` set as in scripts/test.sh):
//! `cargo bench -p sondeo-tests --bench write_units` (env ANSWERS: burst and live-day size, default
//! 5,000; ONLY=burst|live|mixed: one workload; BATCHES=100: only these batch sizes)

use sondeo_domain::response::ResponseEvent;
use sondeo_tests::write_units::{live_day_events, measure_units, with_comments};
use sondeo_tests::{burst_events, generate_events};

#[tokio::main]
async fn main() {
    let answers: usize = std::env::var("ANSWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let workloads: [(&str, Vec<ResponseEvent>); 3] = [
        ("campaign burst", burst_events("burst", answers, 1)),
        (
            "live day, 3 surveys x 5 touchpoints",
            live_day_events(answers, 3),
        ),
        (
            "mixed 10,000 (5 tp x 30 days)",
            generate_events("mixed", 10_000, 2_000, 5, 30, 2),
        ),
    ];
    println!(
        "DynamoDB units per answer in the aggregator, sized from the requests sent (moto server)"
    );
    println!(
        "{:<38} {:>6} {:>8} {:>11} {:>10} {:>10} {:>9} {:>11}",
        "workload",
        "batch",
        "comment",
        "WCU/answer",
        "tx WCU/a",
        "put WCU/a",
        "items/tx",
        "RCU/answer"
    );
    let only = std::env::var("ONLY").unwrap_or_default();
    let batches: Vec<usize> = std::env::var("BATCHES")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    for (name, events) in workloads
        .iter()
        .filter(|(name, _)| name.contains(only.as_str()))
    {
        for &batch in &batches {
            for chars in [0, 200, 2_000] {
                let f = measure_units(&with_comments(events, chars), batch).await;
                let per = |units: u64| units as f64 / f.answers as f64;
                println!(
                    "{name:<38} {batch:>6} {chars:>8} {:>11.3} {:>10.3} {:>10.3} {:>9.1} {:>11.3}",
                    f.wcu_per_answer(),
                    per(f.transact_wcu),
                    per(f.plain_wcu),
                    f.items_per_transaction(),
                    f.rcu_per_answer(),
                );
            }
        }
    }
    println!(
        "goals (issue 9): burst <= 2.05 at batch 100 and <= 2.3 at 10; live day <= 2.3 at 100"
    );
}
