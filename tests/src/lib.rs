//! Test support for Sondeo's integration, end-to-end and benchmark harnesses: a moto-backed AWS
//! setup, a generated response workload with its ground truth, and ledgers that fail on purpose.

pub mod dynamo_wire;
pub mod local_http;
pub mod order_store_contract;
pub mod runtime_api;
pub mod webdriver;
pub mod write_units;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sondeo_domain::aggregate::{apply_batch, Chunk, RecordState};
use sondeo_domain::metrics::Histogram;
use sondeo_domain::ports::{CommitOutcome, CounterReader, ResponseLedger, StoreError};
use sondeo_domain::response::{ResponseEvent, ResponseKey, Source};
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::time::Day;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The moto endpoint from `AWS_ENDPOINT_URL`; panics with instructions when it is not set.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("these tests need a moto server: run `bash scripts/test.sh`, or start `moto_server -p 5000` and set AWS_ENDPOINT_URL=http://127.0.0.1:5000")
    })
}

/// SDK configuration pointed at moto (endpoint from the environment, test credentials).
pub async fn moto_config() -> aws_config::SdkConfig {
    let endpoint = moto_endpoint();
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "tests only talk to a local moto server, not {endpoint}"
    );
    sondeo_aws::tls::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A unique name for a table or queue of one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A `DynamoStore` on a new table of its own on moto, and the client beside it for raw reads.
pub async fn moto_store(
    prefix: &str,
) -> (sondeo_aws::dynamo::DynamoStore, aws_sdk_dynamodb::Client) {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique(prefix)).await;
    (
        sondeo_aws::dynamo::DynamoStore::new(client.clone(), table),
        client,
    )
}

/// One item of a table, as DynamoDB holds it; panics when there is none.
pub async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no item {pk}/{sk}"))
}

/// Creates an SQS queue with a unique name starting with `prefix` and returns its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, prefix: &str) -> String {
    client
        .create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

/// Creates the Sondeo table (`pk`/`sk` strings, on demand) and returns its name.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("at")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(by_time_index())
        .send()
        .await
        .expect("create table on moto");
    name.to_string()
}

/// The template's `by_time` index: a survey's records by answer time.
pub fn by_time_index() -> aws_sdk_dynamodb::types::GlobalSecondaryIndex {
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    GlobalSecondaryIndex::builder()
        .index_name(sondeo_aws::dynamo::BY_TIME_INDEX)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("at", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes("doc")
                .non_key_attributes("auto")
                .non_key_attributes("x")
                .build(),
        )
        .build()
        .unwrap()
}

/// A survey with five touchpoints across the journey, for workloads.
pub fn workload_survey(id: &str) -> Survey {
    let stages = [
        JourneyStage::Awareness,
        JourneyStage::Connection,
        JourneyStage::Consideration,
        JourneyStage::Conversion,
        JourneyStage::Retention,
    ];
    Survey {
        id: id.into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend us?".into(),
        follow_up: "Why?".into(),
        locale: Locale::En,
        touchpoints: (0..5)
            .map(|i| Touchpoint {
                slug: format!("tp{i}"),
                stage: Some(stages[i]),
            })
            .collect(),
        public_key: None,
        brand: None,
        frequency_cap_days: None,
    }
}

/// First day of generated workloads.
pub fn workload_start() -> Day {
    Day::from_ymd(2026, 10, 1).unwrap_or(Day::from_days(0))
}

/// Generates `n` answers from `respondents` people over `touchpoints` touchpoints and `days` days;
/// people answer the same touchpoint more than once (answer changes), at random times.
pub fn generate_events(
    survey: &str,
    n: usize,
    respondents: usize,
    touchpoints: usize,
    days: i32,
    seed: u64,
) -> Vec<ResponseEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start_ms = i64::from(workload_start().days()) * 86_400_000;
    (0..n)
        .map(|i| ResponseEvent {
            event_id: format!("ev{seed:x}-{i:06}"),
            survey: survey.into(),
            touchpoint: format!("tp{}", rng.gen_range(0..touchpoints)),
            respondent: format!("customer-{}@example.com", rng.gen_range(0..respondents)),
            kind: SurveyKind::Nps,
            score: rng.gen_range(0..=10),
            comment: rng.gen_bool(0.2).then(|| "fast delivery".to_string()),
            properties: BTreeMap::new(),
            answered_at: start_ms + rng.gen_range(0..i64::from(days) * 86_400_000),
            source: Source::Link,
            send: String::new(),
            click: false,
        })
        .collect()
}

/// Same-instant events for one survey, touchpoint and day: a campaign burst.
pub fn burst_events(survey: &str, n: usize, seed: u64) -> Vec<ResponseEvent> {
    let mut events = generate_events(survey, n, n * 1000, 1, 1, seed);
    for (i, e) in events.iter_mut().enumerate() {
        e.respondent = format!("burst-{seed}-{i}@example.com");
    }
    events
}

/// The counters a correct aggregator ends with: the latest answer of each response, counted on its
/// day, in its score's slot and its source's (the workloads hold explicit answers, no clicks).
pub fn ground_truth(events: &[ResponseEvent]) -> BTreeMap<(String, Day), Histogram> {
    let mut latest: HashMap<ResponseKey, &ResponseEvent> = HashMap::new();
    for e in events {
        let slot = latest.entry(e.key()).or_insert(e);
        if e.version() > slot.version() {
            *slot = e;
        }
    }
    let mut out: BTreeMap<(String, Day), Histogram> = BTreeMap::new();
    for e in latest.values() {
        let h = out
            .entry((e.touchpoint.clone(), Day::from_unix_ms(e.answered_at)))
            .or_default();
        h.record(e.kind, e.score);
        *h.slots
            .entry(sondeo_domain::metrics::source_slot(e.source))
            .or_default() += 1;
    }
    out
}

/// Reads every counter of a survey over the workload's days, as the ground truth is keyed.
pub async fn read_all_counters<R: CounterReader + ?Sized>(
    reader: &R,
    survey: &str,
    days: i32,
) -> BTreeMap<(String, Day), Histogram> {
    let from = workload_start();
    let rows = reader
        .read_counters(survey, from, from.plus(days))
        .await
        .expect("read counters");
    rows.into_iter()
        .filter(|r| r.histogram.n != 0 || r.histogram.slots.values().any(|c| *c != 0))
        .map(|r| ((r.touchpoint, r.day), r.histogram))
        .collect()
}

/// Delivers events once each, in arrival (answer-time) order, in batches of exactly `batch`.
pub async fn deliver_in_order<L: ResponseLedger + ?Sized>(
    ledger: &L,
    events: &[ResponseEvent],
    batch: usize,
) {
    let mut sorted: Vec<&ResponseEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.answered_at);
    for (n, group) in sorted.chunks(batch).enumerate() {
        let messages = group
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    format!("m{n}-{i}"),
                    serde_json::to_string(e).expect("event serializes"),
                )
            })
            .collect();
        let outcome = apply_batch(ledger, messages).await;
        assert!(
            outcome.failed.is_empty() && outcome.rejected.is_empty(),
            "in-order delivery failed: {outcome:?}"
        );
    }
}

/// Delivers every event `copies` times, shuffled, in batches of random size up to `max_batch`;
/// failed messages go back into the queue at a random place. Returns the batches applied and the
/// conflicts met (chunks re-planned because a record changed since it was read).
pub async fn deliver_shuffled<L: ResponseLedger + ?Sized>(
    ledger: &L,
    events: &[ResponseEvent],
    copies: usize,
    max_batch: usize,
    seed: u64,
) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queue: Vec<(String, String)> = Vec::with_capacity(events.len() * copies);
    for copy in 0..copies {
        for (i, e) in events.iter().enumerate() {
            queue.push((
                format!("msg-{i}-{copy}"),
                serde_json::to_string(e).expect("event serializes"),
            ));
        }
    }
    queue.shuffle(&mut rng);
    let (mut batches, mut conflicts) = (0, 0);
    let mut rounds_without_progress = 0;
    while !queue.is_empty() {
        let size = rng.gen_range(1..=max_batch).min(queue.len());
        let batch: Vec<(String, String)> = queue.drain(..size).collect();
        let bodies: HashMap<String, String> = batch.iter().cloned().collect();
        let outcome = apply_batch(ledger, batch).await;
        batches += 1;
        conflicts += outcome.conflicts;
        assert!(
            outcome.rejected.is_empty(),
            "valid events were rejected: {:?}",
            outcome.rejected
        );
        if outcome.failed.len() == size {
            rounds_without_progress += 1;
            assert!(
                rounds_without_progress < 1000,
                "no progress after 1000 batches"
            );
        } else {
            rounds_without_progress = 0;
        }
        for id in outcome.failed {
            let body = bodies[&id].clone();
            let at = rng.gen_range(0..=queue.len());
            queue.insert(at, (id, body));
        }
    }
    (batches, conflicts)
}

/// Where a flaky ledger failed.
#[derive(Debug, Default)]
pub struct FailureCounts {
    /// Reads that failed.
    pub reads: AtomicUsize,
    /// Commits that failed before writing.
    pub before_commit: AtomicUsize,
    /// Commits that wrote and then reported failure (a lost acknowledgement).
    pub after_commit: AtomicUsize,
}

/// A ledger that fails at random points: reads, commits before writing, and commits after writing.
pub struct FlakyLedger<L> {
    inner: L,
    rng: Mutex<StdRng>,
    probability: f64,
    /// How often each failure happened.
    pub failures: FailureCounts,
}

impl<L> FlakyLedger<L> {
    /// Wraps `inner`; each call fails with `probability`.
    pub fn new(inner: L, probability: f64, seed: u64) -> FlakyLedger<L> {
        FlakyLedger {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            probability,
            failures: FailureCounts::default(),
        }
    }

    /// The wrapped ledger.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    fn roll(&self) -> bool {
        self.rng.lock().unwrap().gen_bool(self.probability)
    }
}

#[async_trait]
impl<L: ResponseLedger> ResponseLedger for FlakyLedger<L> {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        if self.roll() {
            self.failures.reads.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Transient("injected read failure".into()));
        }
        self.inner.load_records(keys).await
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        if self.roll() {
            self.failures.before_commit.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Transient(
                "injected failure before commit".into(),
            ));
        }
        let outcome = self.inner.commit(chunk).await?;
        if outcome == CommitOutcome::Committed && self.roll() {
            self.failures.after_commit.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Transient(
                "injected failure after commit (acknowledgement lost)".into(),
            ));
        }
        Ok(outcome)
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.keep_rejected(message_id, body, reason).await
    }
}

/// A ledger that counts transactions and items written (each transactional item costs 2 write units).
pub struct CountingLedger<L> {
    inner: L,
    /// Committed transactions.
    pub transactions: AtomicUsize,
    /// Items in committed transactions.
    pub items: AtomicUsize,
    /// Keys read by `load_records` (consistent reads: 1 read unit per key, found or not, up to 4 KB).
    pub keys_read: AtomicUsize,
    /// Read calls.
    pub reads: AtomicUsize,
}

impl<L> CountingLedger<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> CountingLedger<L> {
        CountingLedger {
            inner,
            transactions: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            keys_read: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl<L: ResponseLedger> ResponseLedger for CountingLedger<L> {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        let found = self.inner.load_records(keys).await?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.keys_read.fetch_add(keys.len(), Ordering::Relaxed);
        Ok(found)
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        let outcome = self.inner.commit(chunk).await?;
        if outcome == CommitOutcome::Committed {
            self.transactions.fetch_add(1, Ordering::Relaxed);
            self.items
                .fetch_add(chunk.action_count(), Ordering::Relaxed);
        }
        Ok(outcome)
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.keep_rejected(message_id, body, reason).await
    }
}
