//! DynamoDB write units per response in the aggregator, at SQS batch sizes 10 and 100, for a
//! campaign burst (one survey, one touchpoint, one day) and for the mixed 10,000-answer workload
//! (2,000 respondents, 5 touchpoints, 30 days, answer changes).
//!
//! Every item in a `TransactWriteItems` costs 2 write units (items here are under 1 KB), so the
//! figure is 2 × items written / answers. Items per transaction come from the shared planner, the
//! same for DynamoDB and the embedded store, so this runs on the embedded store.
//!
//! Run: `cargo bench -p sondeo-tests --bench write_units`

use sondeo_domain::response::ResponseEvent;
use sondeo_embedded::EmbeddedStore;
use sondeo_tests::{
    burst_events, deliver_in_order, deliver_shuffled, generate_events, CountingLedger,
};
use std::sync::atomic::Ordering;

struct Figures {
    wcu_per_answer: f64,
    rcu_per_answer: f64,
    items_per_tx: f64,
}

async fn measure(events: &[ResponseEvent], batch: usize, triple_shuffled: bool) -> Figures {
    let ledger = CountingLedger::new(EmbeddedStore::in_memory().expect("sqlite"));
    if triple_shuffled {
        deliver_shuffled(&ledger, events, 3, batch, 99).await;
    } else {
        deliver_in_order(&ledger, events, batch).await;
    }
    let items = ledger.items.load(Ordering::Relaxed) as f64;
    let tx = ledger.transactions.load(Ordering::Relaxed) as f64;
    let n = events.len() as f64;
    Figures {
        wcu_per_answer: 2.0 * items / n,
        rcu_per_answer: ledger.keys_read.load(Ordering::Relaxed) as f64 / n,
        items_per_tx: items / tx.max(1.0),
    }
}

#[tokio::main]
async fn main() {
    let burst = burst_events("burst", 10_000, 1);
    let mixed = generate_events("mixed", 10_000, 2_000, 5, 30, 2);
    println!("DynamoDB units per answer in the aggregator (transactional writes: 2 WCU per item)");
    println!(
        "{:<44} {:>6} {:>10} {:>10} {:>12}",
        "workload", "batch", "WCU/answer", "RCU/answer", "items/tx"
    );
    for (name, events, shuffled) in [
        ("campaign burst, delivered once", &burst, false),
        ("mixed 10,000, delivered once", &mixed, false),
        ("mixed 10,000, 3x shuffled (random batches)", &mixed, true),
    ] {
        for batch in [10, 100] {
            let f = measure(events, batch, shuffled).await;
            println!(
                "{name:<44} {batch:>6} {:>10.3} {:>10.3} {:>12.1}",
                f.wcu_per_answer, f.rcu_per_answer, f.items_per_tx
            );
        }
    }
    println!("goals (issue 3): burst <= 2.3 at batch 10, <= 2.05 at batch 100");
}
