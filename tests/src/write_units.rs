//! DynamoDB capacity units per answer, measured on the wire: workloads are delivered in SQS-sized
//! batches through the aggregator into the real [`DynamoStore`] on moto, and a [`DynamoTap`] sizes
//! every request DynamoDB accepted (see [`crate::dynamo_wire`] for the rules).

use crate::dynamo_wire::DynamoTap;
use crate::{create_table, deliver_in_order, generate_events, moto_config, unique};
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::response::ResponseEvent;

/// What a workload cost, counted by the tap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitFigures {
    /// Answers delivered.
    pub answers: usize,
    /// Write units of transactions (records and counters).
    pub transact_wcu: u64,
    /// Write units of plain puts (comments moved out of records).
    pub plain_wcu: u64,
    /// Committed transactions.
    pub transactions: u64,
    /// Items in committed transactions.
    pub transact_items: u64,
    /// Read units (consistent record reads).
    pub rcu: u64,
    /// Largest item written, bytes.
    pub largest_item: usize,
}

impl UnitFigures {
    /// Write units per answer.
    pub fn wcu_per_answer(&self) -> f64 {
        (self.transact_wcu + self.plain_wcu) as f64 / self.answers.max(1) as f64
    }

    /// Read units per answer.
    pub fn rcu_per_answer(&self) -> f64 {
        self.rcu as f64 / self.answers.max(1) as f64
    }

    /// Items per committed transaction.
    pub fn items_per_transaction(&self) -> f64 {
        self.transact_items as f64 / self.transactions.max(1) as f64
    }
}

/// A live day: 3 surveys × 5 touchpoints, every answer today, from mostly distinct respondents.
pub fn live_day_events(n: usize, seed: u64) -> Vec<ResponseEvent> {
    (0..3u64)
        .flat_map(|s| generate_events(&format!("live{s}"), n / 3, n * 10, 5, 1, seed + s))
        .collect()
}

/// The events with a comment of exactly `chars` characters each (none for 0).
pub fn with_comments(events: &[ResponseEvent], chars: usize) -> Vec<ResponseEvent> {
    const TEXT: &str = "The parcel came a day early and the courier was friendly; the app could show the tracking number sooner. ";
    let comment: String = TEXT.chars().cycle().take(chars).collect();
    events
        .iter()
        .map(|e| ResponseEvent {
            comment: (chars > 0).then(|| comment.clone()),
            ..e.clone()
        })
        .collect()
}

/// Delivers `events` once each in answer-time order, in batches of `batch`, into a fresh table on
/// moto through the tap, and returns the units DynamoDB would bill.
pub async fn measure_units(events: &[ResponseEvent], batch: usize) -> UnitFigures {
    let sdk = moto_config().await;
    let tap = DynamoTap::new();
    let client = tap.client(&sdk);
    let table = create_table(&client, &unique("units")).await;
    tap.reset_counts();
    let store = DynamoStore::new(client.clone(), table.clone());
    deliver_in_order(&store, events, batch).await;
    let c = tap.counts();
    // Tables stay in moto's memory: drop this one.
    let _ = client.delete_table().table_name(&table).send().await;
    UnitFigures {
        answers: events.len(),
        transact_wcu: c.transact_wcu,
        plain_wcu: c.plain_wcu,
        transactions: c.count("TransactWriteItems"),
        transact_items: c.transact_items,
        rcu: c.rcu,
        largest_item: c.largest_item,
    }
}
